# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetforge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side base class for fleetforge cloud inventory plugins.

The base class owns everything that is the same for every cloud: reading and checking the
configuration, the bounded fan-out over scopes (regions, accounts, projects...), the inventory
cache (which stores the *final* hosts, variables and groups, so a cache hit makes no API call
and evaluates no template), hostname collisions, the constructed options (compose, groups,
keyed_groups) with each Jinja expression compiled once, and turning failures into one
AnsibleError or one summarised warning.

A cloud plugin subclasses it and implements:

* ``_scopes()``: the list of :class:`Scope` to query (may itself call the cloud);
* ``_fetch(scope)``: the raw instances of one scope (runs in a worker thread);
* optionally ``_fetching(scopes)``: a context manager around all the ``_fetch`` calls;
* ``_to_record(raw, scope)``: a pure function from one instance to a :class:`HostRecord`.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import hashlib
import json
import time
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.template import Templar
from ansible.utils.display import Display

# ansible-core < 2.19 templates any string it finds in a variable: cloud data (tags, names)
# must be marked unsafe there. 2.19+ never templates untrusted data, so no wrapping is needed.
if hasattr(Templar, "evaluate_expression"):
    _wrap_var = None
else:  # pragma: no cover - exercised by the unit tests on ansible-core 2.17/2.18
    from ansible.utils.unsafe_proxy import wrap_var as _wrap_var

display = Display()

CACHE_FORMAT = 1

Scope = namedtuple("Scope", ["label", "data"])
"""One unit of fan-out: ``label`` names it in messages (``"123456789012/eu-west-1"``)."""

HostRecord = namedtuple("HostRecord", ["uid", "name", "hostvars", "connection", "order"])
"""One instance mapped: a unique id, its preferred hostname, its host variables (subject to
hostvars_prefix), its connection variables (ansible_host...: never prefixed) and a sort key
deciding which of several instances wanting one name keeps it."""


@contextlib.contextmanager
def gc_paused():
    """The cyclic garbage collector off for the block, as it was before afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class ScopeError(Exception):
    """A scope could not be listed; ``fatal`` errors stop the run even when other scopes work."""

    def __init__(self, message, fatal=False):
        super().__init__(message)
        self.fatal = fatal


# ------------------------------------------------------------------ pure helpers
def assign_hostnames(records, separator):
    """Give every record a unique hostname; never drop one.

    Records that want the same name are ordered by ``order`` (e.g. launch time); the first keeps
    the name and the others get ``<name><separator><uid>``. Returns (names, collisions) where
    collisions maps each contested name to the number of records that wanted it.
    """
    wanted = {}
    for index, record in enumerate(records):
        wanted.setdefault(record.name, []).append(index)
    names = [None] * len(records)
    taken = set(wanted)
    collisions = {}
    for name, indexes in wanted.items():
        if len(indexes) > 1:
            collisions[name] = len(indexes)
            indexes.sort(key=lambda i: records[i].order)
        names[indexes[0]] = name
        for index in indexes[1:]:
            candidate = "%s%s%s" % (name, separator, records[index].uid)
            while candidate in taken:
                candidate += separator
            taken.add(candidate)
            names[index] = candidate
    return names, collisions


def keyed_group_names(value, keyed, leading_separator=True):
    """The raw group names one keyed_groups entry yields for one key value.

    Same rules as ansible-core's ``Constructable._add_host_to_keyed_groups``: strings and list
    items become names, mappings become ``<key><sep><value>``, ``default_value`` replaces
    empty values, ``trailing_separator: false`` drops the separator of empty mapping values.
    """
    empty = (None, "")
    default = keyed.get("default_value")
    trailing = keyed.get("trailing_separator")
    if trailing is not None and default is not None:
        raise AnsibleError("parameters are mutually exclusive for keyed groups: "
                           "default_value|trailing_separator")
    use_default = value in empty and default is not None
    if not value and not use_default:
        return []
    prefix = keyed.get("prefix", "")
    sep = keyed.get("separator", "_")
    if use_default:
        bare = [default]
    elif isinstance(value, str):
        bare = [value]
    elif isinstance(value, list):
        bare = [default if item in empty and default is not None else item for item in value]
    elif isinstance(value, dict):
        bare = []
        for gname, gval in value.items():
            if gval in empty and default is not None:
                bare.append("%s%s%s" % (gname, sep, default))
            elif gval in empty and trailing is False:
                bare.append(gname)
            else:
                bare.append("%s%s%s" % (gname, sep, gval))
    else:
        raise AnsibleError("Invalid group name format, expected a string or a list of them or "
                           "dictionary, got: %s" % type(value))
    if prefix == "" and leading_separator is False:
        sep = ""
    return ["%s%s%s" % (prefix, sep, name) for name in bare]


def summarise_failures(failures):
    """One line for many failed scopes: 'a/r1, a/r2: AccessDenied (...); b: ...'."""
    by_cause = {}
    for label, cause in failures:
        by_cause.setdefault(cause, []).append(label)
    return "; ".join("%s: %s" % (", ".join(sorted(labels)), cause)
                     for cause, labels in sorted(by_cause.items()))


_PLAIN_TYPES = (str, int, float, bool, type(None))


def plain(value):
    """A template result as plain JSON data: ansible-core 2.19+ tags templated values with their
    origin, which makes the cached result slow to load and is of no use in an inventory."""
    if type(value) in _PLAIN_TYPES:
        return value
    return json.loads(json.dumps(value, default=str))


def _unsafe(value):
    if _wrap_var is None:
        return value
    return _wrap_var(value)


# ------------------------------------------------------------------ expression memo
# Names and filters whose value is not a function of the host's own variables: an expression
# using any of them is evaluated for every host, never memoized.
_IMPURE_NAMES = frozenset((
    "lookup", "query", "q", "now", "lipsum", "vars", "hostvars", "undef", "omit", "cycler",
    "joiner", "namespace", "groups", "group_names", "inventory_hostname", "ansible_facts",
    "play_hosts", "ansible_play_hosts", "environment", "self", "loop", "varargs", "kwargs",
))
_IMPURE_FILTERS = frozenset(("random", "shuffle", "password_hash", "random_mac", "to_uuid"))
_MISSING = ("<missing>",)


class _Impure(Exception):
    pass


def _chain(node, nodes):
    """('name', ('.', attr) | ('[]', key), ...) for a constant access chain on a variable."""
    if isinstance(node, nodes.Name):
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        base = _chain(node.node, nodes)
        return base + ((".", node.attr),) if base else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
            and isinstance(node.arg.value, (str, int)):
        base = _chain(node.node, nodes)
        return base + (("[]", node.arg.value),) if base else None
    return None


def expression_inputs(expression):
    """The variable access chains a Jinja expression reads, or None when its value may depend
    on anything else (lookups, randomness, other hosts, unparsable text).

    ``tags.Env | default('none')`` reads ``('tags', ('.', 'Env'))``: two hosts with the same
    ``tags.Env`` get the same value, so it is evaluated once per distinct value, not per host.
    """
    try:
        import jinja2
        from jinja2 import nodes
        tree = jinja2.Environment().parse("{{ %s }}" % expression)
    except Exception:
        return None
    found = set()

    def walk(node):
        if isinstance(node, (nodes.Filter, nodes.Test)) and node.name in _IMPURE_FILTERS:
            raise _Impure()
        path = _chain(node, nodes)
        if path is not None:
            if path[0] in _IMPURE_NAMES:
                raise _Impure()
            found.add(path)
            return
        if isinstance(node, nodes.Name):
            raise _Impure()  # a store or parameter name: keep it simple
        for child in node.iter_child_nodes():
            walk(child)

    try:
        walk(tree)
    except _Impure:
        return None
    return tuple(sorted(found, key=repr))


def _resolve(variables, path):
    """What an access chain reads, stopping where Jinja could see more than a mapping item."""
    value = variables.get(path[0], _MISSING)
    for kind, part in path[1:]:
        if not isinstance(value, dict) or (kind == "." and hasattr(dict, part)):
            break  # a method, a string, a list...: the key is the whole value
        value = value.get(part, _MISSING)
    return value


def input_key(paths, variables):
    """A hashable fingerprint of what the expression reads from these variables."""
    parts = []
    for path in paths:
        value = _resolve(variables, path)
        if value is _MISSING:
            parts.append("\x00missing")
        elif isinstance(value, (str, int, float, bool)) or value is None:
            parts.append((type(value).__name__, value))
        else:
            parts.append(json.dumps(value, sort_keys=True, default=repr))
    return tuple(parts)


# ------------------------------------------------------------------ template compile cache
def install_compile_cache(templar):
    """Compile each distinct Jinja expression once for this templar instead of once per host.

    ansible-core compiles the expression again on every evaluation; over thousands of hosts
    with a dozen expressions that is most of an inventory's parse time. The memo sits on this
    plugin's own templar only. Semantics are unchanged: the same evaluation path runs, with a
    reused compiled object. When the internals differ (a future ansible-core), nothing is
    cached and evaluation is just slower.
    """
    engine = getattr(templar, "_engine", None)
    if engine is not None and callable(getattr(engine, "_compile_expression", None)):  # 2.19+
        original = engine._compile_expression
        memo = {}

        def compile_expression(expression, *args, **kwargs):
            try:
                key = (str(expression), args, tuple(sorted(kwargs.items())))
                return memo[key]
            except KeyError:
                memo[key] = compiled = original(expression, *args, **kwargs)
                return compiled
            except TypeError:  # unhashable options: no memo
                return original(expression, *args, **kwargs)

        engine._compile_expression = compile_expression
        return True
    environment = templar.__dict__.get("environment")  # 2.17/2.18: an attribute, no warning
    if environment is not None and callable(getattr(environment, "from_string", None)):
        original = environment.from_string
        memo = {}

        def from_string(source, globals=None, template_class=None):
            if globals is not None or template_class is not None or not isinstance(source, str):
                return original(source, globals, template_class)
            try:
                return memo[source]
            except KeyError:
                memo[source] = compiled = original(source)
                return compiled

        environment.from_string = from_string
        return True
    return False


# ------------------------------------------------------------------ the base class
class FleetInventoryBase(BaseInventoryPlugin, Constructable, Cacheable):
    """Base class of the fleetforge cloud inventory plugins (see the module docstring)."""

    NAME = None
    CONFIG_SUFFIXES = ()
    ALL_GROUP = None
    ERROR_GROUP_SUFFIX = "_inventory_errors"

    def __init__(self):
        super().__init__()
        self._group_names = {}
        self._inputs = {}
        self._results = {}

    # -------------------------------------------------------------- subclass hooks
    def _validate_options(self):
        """Check option values beyond their types; raise AnsibleError naming the option."""

    def _scopes(self):
        raise NotImplementedError

    def _fetch(self, scope):
        raise NotImplementedError

    def _fetching(self, scopes):
        """Context manager around the parallel _fetch calls (helpers they share); none here."""
        return contextlib.nullcontext()

    def _to_record(self, raw, scope):
        raise NotImplementedError

    def _describe_error(self, exc):
        """Return ScopeError for a cloud error raised by _fetch/_scopes; None to re-raise."""
        return None

    # -------------------------------------------------------------- ansible entry points
    def verify_file(self, path):
        if not super().verify_file(path):
            return False
        if path.endswith(self.CONFIG_SUFFIXES):
            return True
        display.vvv("Skipping %s: %s config files must end with %s"
                    % (path, self.NAME, " or ".join(self.CONFIG_SUFFIXES)))
        return False

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        config = self._read_config_data(path)
        unknown = sorted(set(config) - set(self._options) - {"plugin"})
        if unknown:
            raise AnsibleError("%s: unknown option(s) %s in %s; valid options are %s"
                               % (self.NAME, ", ".join(unknown), path,
                                  ", ".join(sorted(self._options))))
        self._validate_options()
        install_compile_cache(self.templar)

        # Each page of instances allocates tens of thousands of containers, which trigger
        # collections of the whole, growing heap (an inventory of 4,000 hosts spent more CPU
        # in them than in parsing, under the GIL that the parallel scopes share). The objects
        # built here are acyclic and freed by reference counting; cycles wait until the end.
        with gc_paused():
            cache_key = self.get_cache_key(path)
            digest = self._config_digest(config)
            use_cache = self.get_option("cache")
            if use_cache and cache:
                cached = self._load_cache(cache_key, digest)
                if cached is not None:
                    self._populate_from_result(cached)
                    return
            result, failures = self._build(path)
            self._populate_from_result(result)
            if failures:
                self._report_failures(failures)
            elif use_cache:  # never cache a partial answer: the next run retries what failed
                self._cache[cache_key] = dict(result, format=CACHE_FORMAT, digest=digest)

    # -------------------------------------------------------------- cache
    def _config_digest(self, config):
        """Cached results are final (composed vars, groups), so they depend on every option."""
        text = json.dumps(config, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _load_cache(self, cache_key, digest):
        try:
            cached = self._cache[cache_key]
        except KeyError:
            return None
        if not isinstance(cached, dict) or cached.get("format") != CACHE_FORMAT \
                or cached.get("digest") != digest:
            display.vvv("%s: cache entry is from another configuration, refreshing" % self.NAME)
            return None
        return cached

    # -------------------------------------------------------------- fetch
    def _threads_for(self, items):
        """How many threads _run_pool uses for these items: max_workers, at most one per item."""
        return max(1, min(int(self.get_option("max_workers")), len(items)))

    def _run_pool(self, func, items):
        """Call func(item) for every item with at most max_workers threads.

        Returns [(item, result, error)] in the order of items; cloud errors are translated by
        _describe_error (None = a bug: re-raised).
        """
        if not items:
            return []
        workers = self._threads_for(items)

        def guarded(item):
            try:
                return item, func(item), None
            except ScopeError as exc:
                return item, None, exc
            except Exception as exc:  # translated below, in the caller's thread
                translated = self._describe_error(exc)
                if translated is None:
                    raise
                return item, None, translated

        if workers == 1:
            return [guarded(item) for item in items]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(guarded, items))

    def _collect(self):
        """All records, plus [(scope label, cause)] for scopes that failed."""
        failures = []
        try:
            scopes = self._scopes()
        except ScopeError as exc:
            raise AnsibleError("%s: %s" % (self.NAME, exc)) from None
        if isinstance(scopes, tuple):
            scopes, scope_failures = scopes
            failures.extend(scope_failures)
        started, cpu_started = time.monotonic(), time.process_time()
        with self._fetching(scopes):
            outcomes = self._run_pool(self._fetch, scopes)
        display.vvv("%s: fetched %d scope(s) in %.3f s (%.3f s CPU)" % (
            self.NAME, len(outcomes), time.monotonic() - started,
            time.process_time() - cpu_started))
        records = []
        fatal = []
        for scope, raws, error in outcomes:
            if error is not None:
                failures.append((scope.label, str(error)))
                if error.fatal:
                    fatal.append((scope.label, str(error)))
                continue
            records.extend(self._to_record(raw, scope) for raw in raws)
        if fatal:
            raise AnsibleError("%s: %s" % (self.NAME, summarise_failures(fatal)))
        if failures and not any(outcome[2] is None for outcome in outcomes):
            raise AnsibleError("%s: no scope could be listed: %s"
                               % (self.NAME, summarise_failures(failures)))
        if failures and boolean(self.get_option("strict_errors")):
            raise AnsibleError("%s: strict_errors is set and some scopes failed: %s"
                               % (self.NAME, summarise_failures(failures)))
        return records, failures

    # -------------------------------------------------------------- build the final result
    def _build(self, path):
        records, failures = self._collect()
        records = self._dedupe(records)
        names, collisions = assign_hostnames(records, self.get_option("hostname_collision_separator"))
        if collisions:
            display.warning(
                "%s: %d hostname(s) wanted by several instances; the later ones got their id "
                "appended so that no host is dropped: %s" % (
                    self.NAME, len(collisions),
                    ", ".join("%s (x%d)" % item for item in sorted(collisions.items())[:10])
                    + (" ..." if len(collisions) > 10 else "")))
        hosts = {}
        groups = {}
        children = {}
        prefix = self.get_option("hostvars_prefix") or ""
        for name, record in zip(names, records):
            hostvars = record.hostvars
            if prefix:
                hostvars = {prefix + key: value for key, value in hostvars.items()}
            if record.connection:
                hostvars = dict(hostvars, **record.connection)
            hostvars = self._construct(name, hostvars, groups, children)
            hosts[name] = hostvars
        if failures:
            error_group = self.ALL_GROUP + self.ERROR_GROUP_SUFFIX
            groups.setdefault(error_group, [])
        return {"hosts": hosts, "groups": {g: sorted(m) for g, m in groups.items()},
                "children": {p: sorted(c) for p, c in children.items()},
                "failures": [list(f) for f in failures]}, failures

    @staticmethod
    def _dedupe(records):
        """The same instance returned by two overlapping include_filters queries counts once."""
        seen = set()
        unique = []
        for record in records:
            if record.uid not in seen:
                seen.add(record.uid)
                unique.append(record)
        return unique

    def _sanitize(self, name):
        try:
            return self._group_names[name]
        except KeyError:
            self._group_names[name] = clean = self._sanitize_group_name(name)
            return clean

    def _expression_vars(self, hostvars):
        if self.get_option("use_extra_vars"):
            merged = dict(self._vars)
            merged.update(hostvars)
            return merged
        return hostvars

    def _construct(self, host, hostvars, groups, children):
        """compose, groups and keyed_groups for one host, each expression compiled once."""
        strict = self.get_option("strict")
        compose = self.get_option("compose") or {}
        variables = self._expression_vars(_unsafe(hostvars))
        if compose:
            hostvars = dict(hostvars)
            for varname, expression in compose.items():
                try:
                    hostvars[varname] = self._memoized(False, expression, variables)
                except Exception as exc:
                    if strict:
                        raise AnsibleError("Could not set %s for host %s: %s"
                                           % (varname, host, to_native(exc))) from None
            variables = self._expression_vars(_unsafe(hostvars))
        for group_name, conditional in (self.get_option("groups") or {}).items():
            try:
                matched = self._memoized(True, conditional, variables)
            except Exception as exc:
                if strict:
                    raise AnsibleError("Could not add host %s to group %s: %s"
                                       % (host, group_name, to_native(exc))) from None
                continue
            if matched:
                groups.setdefault(self._sanitize(group_name), set()).add(host)
        leading = self.get_option("leading_separator")
        for keyed in self.get_option("keyed_groups") or []:
            if not isinstance(keyed, dict) or not keyed.get("key"):
                raise AnsibleError("Invalid keyed group entry, it must be a dictionary with a "
                                   "key: %s" % (keyed,))
            try:
                value = self._memoized(False, keyed["key"], variables)
            except Exception as exc:
                if strict:
                    raise AnsibleError("Could not generate group for host %s from %s entry: %s"
                                       % (host, keyed["key"], to_native(exc))) from None
                continue
            names = keyed_group_names(value, keyed, leading)
            if not names and strict and value not in ([], {}):
                raise AnsibleError("No key or key resulted empty for %s in host %s, invalid entry"
                                   % (keyed["key"], host))
            parent = keyed.get("parent_group")
            for raw in names:
                group = self._sanitize(raw)
                groups.setdefault(group, set()).add(host)
                if parent:
                    children.setdefault(self._sanitize(parent), set()).add(group)
        return hostvars

    def _memoized(self, conditional, expression, variables):
        """Evaluate once per distinct input (see expression_inputs); errors are remembered too."""
        try:
            paths = self._inputs[expression]
        except KeyError:
            paths = self._inputs[expression] = expression_inputs(str(expression))
        if paths is None:
            return plain(self._evaluate_now(conditional, expression, variables))
        key = (conditional, str(expression), input_key(paths, variables))
        try:
            ok, value = self._results[key]
        except KeyError:
            try:
                ok, value = True, plain(self._evaluate_now(conditional, expression, variables))
            except Exception as exc:
                ok, value = False, exc
            self._results[key] = (ok, value)
        if not ok:
            raise value
        if isinstance(value, (dict, list)):
            return copy.deepcopy(value)  # hosts never share a mutable value
        return value

    def _evaluate_now(self, conditional, expression, variables):
        if conditional:
            self.templar.available_variables = variables
            return self._conditional(expression)
        return self._evaluate(expression, variables)

    def _evaluate(self, expression, variables):
        """Value of a Jinja expression (compose values, keyed_groups keys)."""
        value = self._compose(expression, variables)
        if type(value).__name__.endswith("Undefined"):  # 2.17/2.18 return it lazily
            raise AnsibleError("'%s' is undefined" % expression)
        return value

    def _conditional(self, conditional):
        evaluate = getattr(self.templar, "evaluate_conditional", None)
        if evaluate is not None:  # ansible-core 2.19+
            return evaluate(conditional)
        return boolean(self.templar.template(
            "{%% if %s %%} True {%% else %%} False {%% endif %%}" % conditional))

    # -------------------------------------------------------------- populate
    def _populate_from_result(self, result):
        """Add the final hosts, variables and groups to the inventory: no templating here."""
        inventory = self.inventory
        all_group = inventory.add_group(self.ALL_GROUP)
        for name, hostvars in result["hosts"].items():
            inventory.add_host(name, group=all_group)
            host = inventory.get_host(name)
            for key, value in hostvars.items():
                host.set_variable(key, _unsafe(value))
        for name, members in result["groups"].items():
            group = inventory.add_group(name)
            for member in members:
                inventory.add_child(group, member)
        for name, kids in result["children"].items():
            parent = inventory.add_group(name)
            for kid in kids:
                inventory.add_child(parent, inventory.add_group(kid))
        failures = result.get("failures") or []
        if failures:
            error_group = inventory.add_group(self.ALL_GROUP + self.ERROR_GROUP_SUFFIX)
            inventory.set_variable(error_group, self.ALL_GROUP + self.ERROR_GROUP_SUFFIX,
                                   _unsafe([{"scope": label, "error": cause}
                                            for label, cause in failures]))

    def _report_failures(self, failures):
        display.warning("%s: skipped %d scope(s) that could not be listed (set strict_errors: "
                        "true to fail instead; details in group var %s): %s"
                        % (self.NAME, len(failures), self.ALL_GROUP + self.ERROR_GROUP_SUFFIX,
                           summarise_failures(failures)))
