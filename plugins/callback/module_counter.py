# Copyright: (c) 2026, fleetforge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: module_counter
type: aggregate
short_description: Count the module executions that reach each host
description:
  - Counts, per host, the task results that ran a module on the host - the round trips a
    playbook costs. Each loop item counts once, fact gathering counts, handlers count.
  - Tasks that run on the controller only do not count (C(set_fact), C(assert), C(debug),
    C(meta), C(include_*)/C(import_*), C(include_vars), C(add_host), C(group_by), C(fail),
    C(pause), C(set_stats), C(validate_argument_spec) and anything listed in O(controller_actions)).
    Skipped tasks and items, and unreachable hosts, do not count.
  - A task delegated to another host counts for the inventory host it ran for, in a separate
    C(delegated) column, so nothing that ran is hidden.
  - At the end of the playbook prints a table (host, executions on the host, delegated,
    changed, failed, wall time) and, when O(output_path) is set, writes the same figures and a
    per-task breakdown as JSON.
requirements:
  - enable in configuration, e.g. C(callbacks_enabled = fleetforge.fleet.module_counter)
options:
  output_path:
    description: File to write the JSON figures to; nothing is written when unset.
    type: path
    env:
      - name: FLEET_MODULE_COUNTER_OUTPUT
    ini:
      - section: callback_module_counter
        key: output_path
  controller_actions:
    description:
      - Actions that run on the controller only and therefore do not count.
      - Short names match C(ansible.builtin.) and C(ansible.legacy.) actions; other
        collections' actions need their fully qualified name.
    type: list
    elements: str
    default: [set_fact, assert, debug, meta, include_tasks, include_role, import_tasks,
              import_role, include_vars, add_host, group_by, fail, pause, set_stats,
              validate_argument_spec]
    env:
      - name: FLEET_MODULE_COUNTER_CONTROLLER_ACTIONS
    ini:
      - section: callback_module_counter
        key: controller_actions
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

BUILTIN_PREFIXES = ("ansible.builtin.", "ansible.legacy.")


def short_action(action):
    """`ansible.builtin.set_fact` -> `set_fact`; other collections keep their FQCN."""
    for prefix in BUILTIN_PREFIXES:
        if action.startswith(prefix):
            return action[len(prefix):]
    return action


def counts(action, controller_actions):
    """Whether a task result of `action` ran a module on a host."""
    return short_action(action or "") not in controller_actions


def _task(result):
    # ansible-core 2.19 names it `task`; 2.17 and 2.18 only have `_task`
    return getattr(result, "task", None) or result._task


def _host(result):
    return getattr(result, "host", None) or result._host


def _data(result):
    return result.result if hasattr(result, "task") else result._result


class CallbackModule(CallbackBase):
    """Count module executions per host."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleetforge.fleet.module_counter"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self.started = time.monotonic()
        self.hosts = {}
        self.controller_actions = set()

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self.controller_actions = {a.strip() for a in self.get_option("controller_actions") or []}

    # ------------------------------------------------------------------ counting
    def _entry(self, host):
        return self.hosts.setdefault(host, {"executions": 0, "delegated": 0, "by_task": {}})

    def _count(self, result, is_item):
        task = _task(result)
        if not counts(getattr(task, "resolved_action", None) or task.action, self.controller_actions):
            return
        if not is_item and (task.loop is not None or task.loop_with):
            return  # the loop's summary result: its items were counted one by one
        entry = self._entry(_host(result).get_name())
        # present only when the task was delegated (ansible-core 2.19 keeps just its connection keys)
        delegated = "_ansible_delegated_vars" in _data(result)
        entry["delegated" if delegated else "executions"] += 1
        name = task.get_name()
        entry["by_task"][name] = entry["by_task"].get(name, 0) + 1

    def v2_playbook_on_start(self, playbook):
        self.started = time.monotonic()

    def v2_runner_on_ok(self, result):
        self._count(result, is_item=False)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result, is_item=False)

    def v2_runner_item_on_ok(self, result):
        self._count(result, is_item=True)

    def v2_runner_item_on_failed(self, result):
        self._count(result, is_item=True)

    # ------------------------------------------------------------------ report
    def figures(self, stats=None):
        """The per-host figures, with changed/failed from the play stats when given."""
        hosts = {}
        names = set(self.hosts) | set(getattr(stats, "processed", {}) or {})
        for host in sorted(names):
            entry = self.hosts.get(host, {"executions": 0, "delegated": 0, "by_task": {}})
            summary = stats.summarize(host) if stats is not None else {}
            hosts[host] = {
                "executions": entry["executions"],
                "delegated": entry["delegated"],
                "changed": summary.get("changed", 0),
                "failed": summary.get("failures", 0),
                "unreachable": summary.get("unreachable", 0),
                "by_task": dict(sorted(entry["by_task"].items())),
            }
        return {"wall_seconds": round(time.monotonic() - self.started, 2), "hosts": hosts}

    def v2_playbook_on_stats(self, stats):
        figures = self.figures(stats)
        self._display.banner("MODULE EXECUTIONS")
        width = max([len(h) for h in figures["hosts"]] + [4])
        self._display.display(f"{'host':<{width}}  executions  delegated  changed  failed")
        for host, row in figures["hosts"].items():
            self._display.display(f"{host:<{width}}  {row['executions']:>10}  {row['delegated']:>9}"
                                  f"  {row['changed']:>7}  {row['failed']:>6}")
        self._display.display(f"wall time: {figures['wall_seconds']:.1f} s")
        path = self.get_option("output_path")
        if path:
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(figures, handle, indent=2, sort_keys=True)
                handle.write("\n")
