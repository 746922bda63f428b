"""Reading one entry-point group from the installed distributions, as importlib.metadata would."""

from __future__ import annotations

import importlib.metadata
import sys
import zipfile
from pathlib import Path

import pytest

from taskq._entry_points import EntryPoint, entry_points

read_uncached = entry_points.__wrapped__


def _install(folder: Path, dist_dir: str, name: str, version: str, entry_points_txt: str) -> None:
    path = folder / dist_dir
    path.mkdir(parents=True)
    (path / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nName: not this\n")
    (path / "entry_points.txt").write_text(entry_points_txt)


def test_the_taskq_plugins_group_matches_importlib_metadata() -> None:
    expected = sorted(
        (ep.name, ep.value, str(ep.dist.metadata["Name"]), str(ep.dist.version))
        for ep in importlib.metadata.entry_points(group="taskq.plugins")
        if ep.dist is not None
    )
    found = sorted((ep.name, ep.value, ep.distribution, ep.version) for ep in read_uncached("taskq.plugins"))
    assert found == expected
    assert ("json", "taskq.builtins.json", "taskq-core", importlib.metadata.version("taskq-core")) in found


def test_only_the_asked_group_is_read_with_name_and_version_from_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(
        tmp_path,
        "acme_taskq-1.2.dist-info",
        "acme-taskq",
        "1.2",
        "[console_scripts]\nacme = acme.cli:main\n\n"
        "[acme.group]\n# a comment\nfast = acme.plugin\nslow=acme.other:hooks [extra]\n",
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert read_uncached("acme.group") == (
        EntryPoint("fast", "acme.plugin", "acme-taskq", "1.2"),
        EntryPoint("slow", "acme.other:hooks [extra]", "acme-taskq", "1.2"),
    )
    assert read_uncached("no.such.group") == ()


def test_a_distribution_found_twice_counts_once_the_first_on_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(tmp_path / "first", "Acme.Taskq-2.0.dist-info", "acme.taskq", "2.0", "[g]\nacme = acme_new.plugin\n")
    _install(tmp_path / "second", "acme_taskq-1.0.egg-info", "acme-taskq", "1.0", "[g]\nacme = acme_old.plugin\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "first"), str(tmp_path / "missing"), str(tmp_path / "second")])
    assert read_uncached("g") == (EntryPoint("acme", "acme_new.plugin", "acme.taskq", "2.0"),)


def test_a_zip_file_on_sys_path_is_read_by_importlib_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(
            "zipped_acme-3.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped-acme\nVersion: 3.0\n"
        )
        bundle.writestr("zipped_acme-3.0.dist-info/entry_points.txt", "[g]\nzipped = zipped_acme.plugin\n")
    monkeypatch.setattr(sys, "path", [str(archive)])
    assert read_uncached("g") == (EntryPoint("zipped", "zipped_acme.plugin", "zipped-acme", "3.0"),)


def test_load_imports_the_module_and_the_attribute_it_names() -> None:
    assert EntryPoint("json", "taskq.builtins.json", "taskq-core", "0").load() is sys.modules["taskq.builtins.json"]
    target = EntryPoint("x", "taskq.plugins:Plugins.register [extra]", "taskq-core", "0").load()
    assert target is sys.modules["taskq.plugins"].Plugins.register
