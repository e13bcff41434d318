"""module_counter: which task results count, the figures, and one real ansible-playbook run."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from ansible import constants as C
from ansible.executor.stats import AggregateStats
from ansible.inventory.host import Host
from ansible_collections.fleetforge.fleet.plugins.callback import module_counter as mc


def load_counter():
    """The plugin with its documented options registered, as the plugin loader would do
    (test_a_real_playbook_run below goes through the real loader)."""
    plugin = mc.CallbackModule()
    plugin._load_name = "fleetforge.fleet.module_counter"
    C.config.initialize_plugin_configuration_definitions(
        "callback", plugin._load_name, yaml.safe_load(mc.DOCUMENTATION)["options"])
    return plugin


@pytest.fixture
def counter(tmp_path):
    plugin = load_counter()
    plugin.set_options(direct={"output_path": str(tmp_path / "out" / "counts.json")})
    return plugin


class FakeTask(SimpleNamespace):
    """Stand-in for ansible.playbook.task.Task: the attributes the callback reads."""

    def get_name(self):
        return self.name


def result(host, action, data=None, loop=None, legacy=False, name=None):
    """A task result shaped like ansible-core 2.19's (task/host/result) or 2.17's (_task/...)."""
    task = FakeTask(action=action, resolved_action=None, loop=loop, loop_with=None,
                    name=name or action)
    if legacy:
        return SimpleNamespace(_task=task, _host=Host(host), _result=data or {})
    return SimpleNamespace(task=task, host=Host(host), result=data or {})


@pytest.mark.parametrize("action, counted", [
    ("ansible.builtin.command", True),
    ("command", True),
    ("ansible.legacy.setup", True),
    ("ansible.builtin.gather_facts", True),
    ("fleetforge.fleet.sysctl_profile", True),
    ("ansible.builtin.wait_for_connection", True),
    ("ansible.builtin.set_fact", False),
    ("ansible.legacy.assert", False),
    ("debug", False),
    ("ansible.builtin.meta", False),
    ("ansible.builtin.include_tasks", False),
    ("ansible.builtin.include_role", False),
    ("ansible.builtin.include_vars", False),
    ("ansible.builtin.validate_argument_spec", False),
    ("ansible.builtin.fail", False),
    # only the builtin set_fact is known to be controller-side; a namesake elsewhere counts
    ("other.collection.set_fact", True),
])
def test_which_actions_count(counter, action, counted):
    assert mc.counts(action, counter.controller_actions) is counted


@pytest.mark.parametrize("legacy", [False, True], ids=["core-2.19", "core-2.17"])
def test_items_count_one_by_one_and_the_loop_summary_does_not(counter, legacy):
    for item in (1, 2, 3):
        counter.v2_runner_item_on_ok(result("web1", "ansible.builtin.command", data={"item": item},
                                            loop=[1, 2, 3], legacy=legacy, name="Loop"))
    counter.v2_runner_item_on_failed(result("web1", "ansible.builtin.command", loop=[1], legacy=legacy,
                                            name="Loop"))
    counter.v2_runner_on_ok(result("web1", "ansible.builtin.command", loop=[1, 2, 3], legacy=legacy,
                                   name="Loop"))
    counter.v2_runner_on_ok(result("web1", "ansible.builtin.gather_facts", legacy=legacy,
                                   name="Gathering Facts"))
    counter.v2_runner_on_ok(result("web1", "ansible.builtin.set_fact", legacy=legacy))
    counter.v2_runner_on_failed(result("web1", "ansible.builtin.stat", legacy=legacy, name="Stat"))
    counter.v2_runner_on_ok(result("web2", "ansible.builtin.stat", legacy=legacy, name="Stat"))
    figures = counter.figures()
    assert figures["hosts"]["web1"]["executions"] == 6
    assert figures["hosts"]["web1"]["by_task"] == {"Gathering Facts": 1, "Loop": 4, "Stat": 1}
    assert figures["hosts"]["web2"]["executions"] == 1


def test_delegated_tasks_are_counted_apart(counter):
    counter.v2_runner_on_ok(result("web1", "ansible.builtin.uri",
                                   data={"_ansible_delegated_vars": {"ansible_host": "localhost"}}))
    counter.v2_runner_on_ok(result("web1", "ansible.builtin.stat"))
    row = counter.figures()["hosts"]["web1"]
    assert (row["executions"], row["delegated"]) == (1, 1)


def test_extra_controller_actions_are_honoured(tmp_path):
    plugin = load_counter()
    plugin.set_options(direct={"controller_actions": ["set_fact", "community.general.random_words"]})
    assert not mc.counts("community.general.random_words", plugin.controller_actions)
    assert mc.counts("ansible.builtin.assert", plugin.controller_actions)


def test_stats_write_the_table_and_the_json(counter, tmp_path, capsys):
    counter.v2_runner_on_ok(result("web1", "ansible.builtin.stat", name="Stat"))
    stats = AggregateStats()
    stats.increment("ok", "web1")
    stats.increment("changed", "web1")
    stats.increment("ok", "idle")  # a host with nothing counted still gets its row
    counter.v2_playbook_on_stats(stats)
    figures = json.loads((tmp_path / "out" / "counts.json").read_text())
    assert figures["hosts"]["web1"]["executions"] == 1 and figures["hosts"]["web1"]["changed"] == 1
    assert figures["hosts"]["idle"]["executions"] == 0
    assert figures["wall_seconds"] >= 0
    out = capsys.readouterr().out
    assert "MODULE EXECUTIONS" in out
    assert [line.split()[:3] for line in out.splitlines() if line.startswith("web1")] == [["web1", "1", "0"]]


PLAYBOOK = """
- name: Exercise the counter
  hosts: all
  gather_facts: true
  tasks:
    - name: One command
      ansible.builtin.command: "true"
      changed_when: false
    - name: A loop of three
      ansible.builtin.command: "echo {{ item }}"
      loop: [1, 2, 3]
      changed_when: false
    - name: A loop with one item skipped
      ansible.builtin.command: "echo {{ item }}"
      loop: [1, 2, 3]
      when: item != 2
      changed_when: false
    - name: Skipped
      ansible.builtin.command: "true"
      when: false
    - name: Set a fact
      ansible.builtin.set_fact:
        seen: true
    - name: Assert
      ansible.builtin.assert:
        that: seen
    - name: Include
      ansible.builtin.include_tasks: included.yml
    - name: Delegated
      ansible.builtin.command: "true"
      delegate_to: localhost
      changed_when: false
    - name: Failing but ignored
      ansible.builtin.command: "false"
      ignore_errors: true
    - name: Notify
      ansible.builtin.command: "true"
      notify: Handler
    - name: Flush
      ansible.builtin.meta: flush_handlers
  handlers:
    - name: Handler
      ansible.builtin.command: "true"
      changed_when: false
"""


def test_a_real_playbook_run(tmp_path):
    """ansible-playbook through the callback against a local host: 11 module executions
    (facts 1, command 1, loop 3, loop 2 of 3, included stat 1, failed 1, notify 1, handler 1),
    1 delegated; set_fact, assert, include, meta and the skipped task do not count."""
    (tmp_path / "play.yml").write_text(textwrap.dedent(PLAYBOOK))
    (tmp_path / "included.yml").write_text(
        "- name: Included stat\n  ansible.builtin.stat:\n    path: /\n")
    (tmp_path / "hosts.ini").write_text(
        f"web1 ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    out = tmp_path / "counts.json"
    env = dict(os.environ, ANSIBLE_CALLBACKS_ENABLED="fleetforge.fleet.module_counter",
               FLEET_MODULE_COUNTER_OUTPUT=str(out), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_HOME=str(tmp_path / "home"))
    playbook_bin = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run([str(playbook_bin), "-i", str(tmp_path / "hosts.ini"), str(tmp_path / "play.yml")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = json.loads(out.read_text())["hosts"]["web1"]
    # `command` reports changed even when it fails: Notify and Failing but ignored
    assert (row["executions"], row["delegated"], row["changed"]) == (11, 1, 2)
    assert row["by_task"] == {"A loop of three": 3, "A loop with one item skipped": 2, "Delegated": 1,
                              "Failing but ignored": 1, "Gathering Facts": 1, "Handler": 1,
                              "Included stat": 1, "Notify": 1, "One command": 1}
    assert "MODULE EXECUTIONS" in proc.stdout
