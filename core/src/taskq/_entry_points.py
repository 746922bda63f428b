"""The entry points of one group, read from the installed distributions' metadata folders.

This is what ``importlib.metadata.entry_points(group=...)`` does for the plain folders on
``sys.path``, without its cost at start-up (#5): importing importlib.metadata pulls in the
email parser, zipfile and csv (about 20 ms), it reads every distribution's entry points for
every group, and each name or version asked of a distribution parses its METADATA again.
Here each sys.path folder is listed once, only ``entry_points.txt`` files are read, and
METADATA is read (its header only) just for the distributions that offer the group.

Anything this module does not read itself goes to importlib.metadata, so nothing is
missed: a sys.path entry that is not a plain folder (a zip file, an ``.egg``), or a finder
on ``sys.meta_path`` that lists distributions of its own.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import os
import re
import sys
from dataclasses import dataclass

#: Suffixes of the folders that hold an installed distribution's metadata.
METADATA_SUFFIXES = (".dist-info", ".egg-info")


@dataclass(frozen=True)
class EntryPoint:
    """One entry point and the distribution that declares it."""

    name: str
    #: ``"package.module"`` or ``"package.module:attr"``, as declared.
    value: str
    distribution: str
    version: str

    def load(self) -> object:
        """Import the module the entry point names (and the attribute, if it names one)."""
        module_name, _, attr = self.value.partition("[")[0].partition(":")
        obj: object = importlib.import_module(module_name.strip())
        for part in filter(None, attr.strip().split(".")):
            obj = getattr(obj, part)
        return obj


@functools.cache
def entry_points(group: str) -> tuple[EntryPoint, ...]:
    """Every entry point of ``group`` on ``sys.path``; a distribution found twice counts once.

    Read once per process (as stevedore and pluggy do): plugins installed while the
    process runs are seen by the next one.
    """
    if not _is_plain_path():
        return _from_importlib_metadata(group)
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for entry in sys.path:
        folder = entry or "."
        try:
            children = os.listdir(folder)
        except OSError:
            continue  # missing or unreadable: importlib.metadata skips it too
        for child in children:
            stem, suffix = os.path.splitext(child)
            if suffix.lower() not in METADATA_SUFFIXES:
                continue
            key = _normalize(stem.partition("-")[0])
            if key in seen:
                continue  # the first on sys.path wins, as in importlib.metadata
            seen.add(key)
            path = os.path.join(folder, child)
            text = _read(os.path.join(path, "entry_points.txt"))
            entries = _section(text, group) if text else []
            if entries:
                name, version = _name_and_version(path, stem)
                found.extend(EntryPoint(ep_name, value, name, version) for ep_name, value in entries)
    return tuple(found)


def _is_plain_path() -> bool:
    """Whether every distribution is in a plain folder on sys.path (see the module docstring)."""
    for entry in sys.path:
        if entry.endswith(".egg") or (entry and os.path.isfile(entry)):
            return False
    path_finder = importlib.machinery.PathFinder
    return not any(finder is not path_finder and hasattr(finder, "find_distributions") for finder in sys.meta_path)


def _from_importlib_metadata(group: str) -> tuple[EntryPoint, ...]:
    from importlib.metadata import entry_points as metadata_entry_points

    found = []
    for ep in metadata_entry_points(group=group):
        dist = ep.dist
        if dist is None:
            name, version = "?", "?"
        else:
            metadata = dist.metadata
            name, version = str(metadata["Name"]), str(metadata["Version"])
        found.append(EntryPoint(ep.name, ep.value, name, version))
    return tuple(found)


def _normalize(name: str) -> str:
    """A distribution name as importlib.metadata compares them (PEP 503, with underscores)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def _section(text: str, group: str) -> list[tuple[str, str]]:
    """The ``name = value`` lines of the ``[group]`` section of an entry_points.txt."""
    entries: list[tuple[str, str]] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            inside = line[1:-1].strip() == group
            continue
        if inside:
            name, sep, value = line.partition("=")
            if sep:
                entries.append((name.strip(), value.strip()))
    return entries


def _name_and_version(path: str, stem: str) -> tuple[str, str]:
    """The distribution's Name and Version, from the header of its METADATA (or PKG-INFO)."""
    text = _read(os.path.join(path, "METADATA")) or _read(os.path.join(path, "PKG-INFO")) or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the header ends at the first blank line; the description follows
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version") and key not in fields:
            fields[key] = value.strip()
    stem_name, _, stem_version = stem.partition("-")
    return fields.get("Name", stem_name), fields.get("Version", stem_version.partition("-")[0] or "?")


__all__ = ["EntryPoint", "entry_points"]
