"""Listing the taskq.plugins entry points through stevedore's cache, distributions read on demand."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

from taskq._entry_points import UNKNOWN, distribution_of, entry_points

GROUP = "taskq.plugins"

# What a child process prints: the plugins it finds, each with its distribution.
LIST_PLUGINS = (
    "import json\n"
    "from taskq._entry_points import distribution_of, entry_points\n"
    "found = sorted((ep.name, ep.value, *distribution_of('taskq.plugins', ep.name, ep.value))\n"
    "               for ep in entry_points('taskq.plugins'))\n"
    "print(json.dumps([f for f in found if f[0].startswith('acme')]))\n"
    "from stevedore import _cache\n"
    "print(json.dumps(_cache._c._disable_caching))\n"
)


def _install(folder: Path, name: str, version: str, entry_point: str) -> None:
    """A distribution's metadata folder in ``folder``, as an installer leaves it."""
    path = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    path.mkdir(parents=True)
    (path / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (path / "entry_points.txt").write_text(f"[{GROUP}]\n{entry_point}\n")


def _list_in_child(site: Path, cache: Path) -> tuple[list[list[str]], bool]:
    """The acme plugins a new process finds, and whether its stevedore caches at all.

    stevedore caches nothing for an interpreter under /tmp (its rule, for throwaway
    environments), as a fresh clone there has; the listing must be right either way.
    """
    env = {**os.environ, "PYTHONPATH": str(site), "XDG_CACHE_HOME": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", LIST_PLUGINS], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    lines = out.stdout.splitlines()
    found: list[list[str]] = json.loads(lines[0])
    return found, not json.loads(lines[1])


def test_the_group_lists_what_importlib_metadata_lists_with_each_distribution() -> None:
    expected = sorted(
        (ep.name, ep.value, str(ep.dist.metadata["Name"]), ep.dist.version)
        for ep in importlib.metadata.entry_points(group=GROUP)
        if ep.dist is not None
    )
    found = sorted((ep.name, ep.value, *distribution_of(GROUP, ep.name, ep.value)) for ep in entry_points(GROUP))
    assert found == expected
    assert ("json", "taskq.builtins.json", "taskq-core", importlib.metadata.version("taskq-core")) in found


def test_an_entry_point_no_metadata_declares_has_an_unknown_distribution() -> None:
    assert distribution_of(GROUP, "json", "elsewhere.plugin") == UNKNOWN


def test_a_plugin_installed_after_the_cache_was_written_is_found_by_the_next_process(tmp_path: Path) -> None:
    site, cache = tmp_path / "site", tmp_path / "cache"
    _install(site, "acme-taskq", "1.2", "acme = acme_taskq.plugin")
    found, caches = _list_in_child(site, cache)
    assert found == [["acme", "acme_taskq.plugin", "acme-taskq", "1.2"]]
    written = cache / "python-entrypoints"
    assert (written.is_dir() and any(written.iterdir())) == caches, "stevedore's cache file, where it caches"
    _install(site, "acme-extra", "0.3", "acme-extra = acme_extra.plugin")
    found, _ = _list_in_child(site, cache)
    assert found == [
        ["acme", "acme_taskq.plugin", "acme-taskq", "1.2"],
        ["acme-extra", "acme_extra.plugin", "acme-extra", "0.3"],
    ]
