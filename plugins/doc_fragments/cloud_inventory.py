# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetforge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Options of every fleetforge cloud inventory plugin (plugin_utils/inventory.py)."""

    DOCUMENTATION = r"""
options:
  max_workers:
    description:
      - How many regions/accounts are queried at the same time.
    type: int
    default: 8
  strict_errors:
    description:
      - By default a region or account that cannot be listed (not enabled, access denied, role
        not assumable, still throttled after the retries) is skipped; all skipped scopes are named
        in one warning and in a variable on the C(<plugin>_inventory_errors) group, and the
        result is not cached.
      - When V(true), any such failure fails the inventory.
      - When no scope at all can be listed, the inventory fails either way.
    type: bool
    default: false
  hostvars_prefix:
    description:
      - Prefix for the names of the instance variables (not for C(ansible_host) and other
        connection variables). O(compose), O(groups) and O(keyed_groups) see the prefixed names.
    type: str
    default: ''
  hostname_collision_separator:
    description:
      - When several instances want the same hostname, the one launched first keeps it and the
        others get C(<hostname><separator><instance id>); no host is ever dropped. One warning
        lists the contested names.
    type: str
    default: _
"""
