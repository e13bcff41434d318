"""Make `ansible_collections.fleetforge.fleet` importable from a plain checkout.

ansible-test and a staged copy already sit under ansible_collections/fleetforge/fleet; a
checkout gets a symlink at .build/collections/ansible_collections/fleetforge/fleet.
"""
import contextlib
import os
import sys
from pathlib import Path

COLLECTION_ROOT = Path(__file__).resolve().parents[2]


def _collections_root() -> Path:
    if COLLECTION_ROOT.parent.name == "fleetforge" and \
            COLLECTION_ROOT.parent.parent.name == "ansible_collections":
        return COLLECTION_ROOT.parent.parent.parent
    base = COLLECTION_ROOT / ".build" / "collections"
    link = base / "ansible_collections" / "fleetforge" / "fleet"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            link.symlink_to(COLLECTION_ROOT)
    return base


_root = str(_collections_root())
if _root not in sys.path:
    sys.path.insert(0, _root)
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", _root)
