"""Pure functions of the cloud inventory base class (plugins/plugin_utils/inventory.py)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible_collections.fleetforge.fleet.plugins.plugin_utils.inventory import (
    HostRecord,
    assign_hostnames,
    expression_inputs,
    input_key,
    install_compile_cache,
    keyed_group_names,
    summarise_failures,
)


def record(uid, name, launched):
    return HostRecord(uid, name, {}, {}, (launched, uid))


def test_colliding_names_keep_the_first_launched_and_drop_nobody():
    records = [record("i-3", "web", "2026-03"), record("i-1", "web", "2026-01"),
               record("i-2", "db", "2026-02"), record("i-4", "web", "2026-02")]
    names, collisions = assign_hostnames(records, "_")
    assert names == ["web_i-3", "web", "db", "web_i-4"]
    assert collisions == {"web": 3}
    assert len(set(names)) == len(records)


def test_a_suffixed_name_never_collides_with_a_real_one():
    records = [record("i-1", "web", "1"), record("i-2", "web", "2"), record("i-9", "web_i-2", "0")]
    names, _collisions = assign_hostnames(records, "_")
    assert len(set(names)) == 3 and names[2] == "web_i-2"


@pytest.mark.parametrize("value, keyed, leading, wanted", [
    ("eu-west-1", {"prefix": "region"}, True, ["region_eu-west-1"]),
    ("eu-west-1", {}, True, ["_eu-west-1"]),
    ("eu-west-1", {}, False, ["eu-west-1"]),
    (["a", ""], {"prefix": "p", "default_value": "none"}, True, ["p_a", "p_none"]),
    ({"Env": "prod", "Team": ""}, {"prefix": "tag"}, True, ["tag_Env_prod", "tag_Team_"]),
    ({"Team": ""}, {"prefix": "tag", "trailing_separator": False}, True, ["tag_Team"]),
    ({"Team": ""}, {"prefix": "tag", "default_value": "x"}, True, ["tag_Team_x"]),
    ("", {"prefix": "p", "default_value": "none"}, True, ["p_none"]),
    ("", {"prefix": "p"}, True, []),
    (None, {"prefix": "p"}, True, []),
    ("x", {"prefix": "p", "separator": "-"}, True, ["p-x"]),
])
def test_keyed_group_names_follow_core_rules(value, keyed, leading, wanted):
    assert keyed_group_names(value, keyed, leading) == wanted


def test_keyed_group_rejects_default_with_trailing_separator():
    with pytest.raises(AnsibleError, match="mutually exclusive"):
        keyed_group_names("x", {"default_value": "a", "trailing_separator": False})


@pytest.mark.parametrize("expression, inputs", [
    ("placement.region", (("placement", (".", "region")),)),
    ("tags.Env | default('none')", (("tags", (".", "Env")),)),
    ("tags['Name'] ~ '-' ~ instance_id", (("instance_id",), ("tags", ("[]", "Name")))),
    ("[1, 2] | map('string') | list", ()),
    ("lookup('env', 'HOME')", None),
    ("instance_id | random", None),
    ("hostvars[inventory_hostname]", None),
    ("vars['x']", None),
    ("{{ not an expression", None),
])
def test_expression_inputs(expression, inputs):
    assert expression_inputs(expression) == inputs


def test_input_key_sees_what_the_expression_reads_and_nothing_else():
    paths = expression_inputs("tags.Env | default('none')")
    a = {"tags": {"Env": "prod", "Name": "a"}}
    b = {"tags": {"Env": "prod", "Name": "b"}}
    c = {"tags": {"Name": "c"}}
    assert input_key(paths, a) == input_key(paths, b) != input_key(paths, c)
    methods = expression_inputs("tags.items() | list")  # a method: the whole mapping counts
    assert input_key(methods, a) != input_key(methods, b)
    assert input_key(expression_inputs("x"), {"x": None}) != input_key(expression_inputs("x"), {})


def test_compile_cache_keeps_results_right():
    templar = Templar(loader=DataLoader())
    assert install_compile_cache(templar)
    results = []
    for name in ("a", "b", "a"):
        templar.available_variables = {"name": name}
        if hasattr(templar, "evaluate_expression"):
            from ansible.template import trust_as_template
            results.append(templar.evaluate_expression(trust_as_template("name ~ '!'")))
        else:
            results.append(templar.template("{{ name ~ '!' }}"))
    assert results == ["a!", "b!", "a!"]


def test_failures_are_summarised_by_cause():
    text = summarise_failures([("a/r1", "AccessDenied"), ("a/r2", "AccessDenied"),
                               ("b", "OptInRequired")])
    assert text == "a/r1, a/r2: AccessDenied; b: OptInRequired"
