# Copyright: (c) 2026, fleetforge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A TOML writer: the standard library reads TOML (tomllib, Python 3.11) but cannot write it.

Writes TOML 1.0 from plain data: tables (dicts) become ``[a.b]`` sections, lists of dicts
become arrays of tables ``[[a]]``, every other list an inline array. Within a table, plain
keys come before sub-tables, as TOML requires; key order is kept. Values that TOML cannot
hold (None, sets, objects) are refused with the key path that holds them.
"""
from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


class TomlError(AnsibleFilterError):
    """Data that TOML cannot represent."""


def _key(key, path):
    if not isinstance(key, str):
        raise TomlError(f"to_toml: key {key!r} under {_path(path)} must be a string")
    return key if _BARE_KEY.match(key) else _string(key)


def _path(path):
    return ".".join(path) or "the top level"


def _string(value):
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append("\\u%04X" % ord(char))
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _is_table(value):
    return isinstance(value, Mapping)


def _is_array(value):
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _is_table_array(value):
    return _is_array(value) and len(value) > 0 and all(_is_table(item) for item in value)


def _scalar(value, path):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if _is_array(value):
        return "[" + ", ".join(_scalar(item, path) for item in value) + "]"
    if _is_table(value):
        items = ", ".join(f"{_key(k, path)} = {_scalar(v, path + [str(k)])}" for k, v in value.items())
        return "{" + (" " + items + " " if items else "") + "}"
    raise TomlError(
        f"to_toml: {_path(path)} holds {type(value).__name__} {value!r}, which TOML cannot represent")


def _table(data, path, lines):
    """Append the lines of one table: its plain keys, then each sub-table under its header."""
    for key, value in data.items():
        if not (_is_table(value) or _is_table_array(value)):
            lines.append(f"{_key(key, path)} = {_scalar(value, path + [str(key)])}")
    for key, value in data.items():
        header = path + [_key(key, path)]
        if _is_table(value):
            # A table with only sub-tables is declared by them; an empty one needs its header.
            if not value or any(not (_is_table(v) or _is_table_array(v)) for v in value.values()):
                lines.extend(["", "[" + ".".join(header) + "]"])
            _table(value, header, lines)
        elif _is_table_array(value):
            for item in value:
                lines.extend(["", "[[" + ".".join(header) + "]]"])
                _table(item, header, lines)


def to_toml(data):
    """The TOML document for a dict (the document's top-level table)."""
    if not _is_table(data):
        raise TomlError(f"to_toml: the document must be a dict, got {type(data).__name__}")
    lines = []
    _table(data, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


class FilterModule:
    """TOML filters."""

    def filters(self):
        return {"to_toml": to_toml}
