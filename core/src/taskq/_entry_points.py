"""The entry points of one group, listed through stevedore's entry-point cache.

stevedore keeps every group of every installed distribution in one JSON file per state
of ``sys.path`` (under ``~/.cache/python-entrypoints``; keyed by the interpreter, the
path entries and the modification times of their ``entry_points.txt`` files), so a start
reads one file instead of every distribution's metadata, and a plugin installed or
removed since is seen at the next start. The listing is kept for the process, as
stevedore and pluggy keep theirs.

The cache keeps no distribution names, which only ``taskq plugins`` and error messages
show: :func:`distribution_of` reads them from the installed metadata, once a process
asks for one.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

#: What :func:`distribution_of` answers for an entry point no installed metadata declares.
UNKNOWN = ("?", "?")


def entry_points(group: str) -> list[EntryPoint]:
    """Every entry point of ``group``, in the order stevedore lists them; none is loaded."""
    import stevedore  # here, not at the top: `import taskq` alone needs no discovery

    # An empty selection loads nothing: the manager is only asked for its listing.
    listing: stevedore.NamedExtensionManager[object] = stevedore.NamedExtensionManager(
        group, names=(), on_missing_entrypoints_callback=None
    )
    return listing.list_entry_points()


def distribution_of(group: str, name: str, value: str) -> tuple[str, str]:
    """``(distribution, version)`` of the entry point ``name = value`` of ``group``."""
    return _distributions(group).get((name, value), UNKNOWN)


@functools.cache
def _distributions(group: str) -> dict[tuple[str, str], tuple[str, str]]:
    # Deferred: reading every distribution's metadata is what the cache saves at start-up.
    from importlib.metadata import entry_points as metadata_entry_points

    found: dict[tuple[str, str], tuple[str, str]] = {}
    for entry_point in metadata_entry_points(group=group):
        dist = entry_point.dist
        if dist is not None:
            # The first on sys.path wins, as it does for the import.
            found.setdefault((entry_point.name, entry_point.value), (str(dist.metadata["Name"]), dist.version))
    return found


__all__ = ["UNKNOWN", "distribution_of", "entry_points"]
