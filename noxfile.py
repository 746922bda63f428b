"""Every job a developer or CI runs. ``nox -l`` is the menu; ``nox`` runs the defaults.

Every session installs at the versions locked in ``constraints.txt`` (``nox -s lock``
writes it from the requirements the pyproject.toml files and requirement files declare),
so a clone passes the same way months later.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

# nox.project.dependency_groups came in 2025.02.09; the README's command installs the locked nox
nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PYTHON = "3.11"
PLUGINS = sorted(p for p in (ROOT / "plugins").glob("taskq-*") if (p / "pyproject.toml").is_file())
DISTS = {"taskq-core": "core"} | {p.name: f"plugins/{p.name}" for p in PLUGINS}
#: Distributions a distribution's tests need beside taskq-core. Core's own worker tests
#: need a pool, and the lightest one is solo.
TEST_COMPANIONS = {
    # the remote control tests resize and terminate on the thread and asyncio pools
    "taskq-core": ["plugins/taskq-solo", "plugins/taskq-thread", "plugins/taskq-asyncio"],
    # a worker started on a broker or backend that refuses its login must exit before it
    # runs anything: those tests start `taskq worker -P solo`
    "taskq-amqp": ["plugins/taskq-solo"],
    "taskq-redis": ["plugins/taskq-solo"],
    "taskq-sqlalchemy": ["plugins/taskq-solo"],
    # a worker started with a broadcast queue it cannot have must refuse to start
    "taskq-sqs": ["plugins/taskq-solo"],
    # its tests serve the dashboard of a real worker (solo pool) on a SQLite broker
    "taskq-dashboard": ["plugins/taskq-solo", "plugins/taskq-sqlite"],
    # its tests run signed tasks on real workers (solo and prefork pools), on SQLite, Redis and RabbitMQ
    "taskq-security": [
        "plugins/taskq-solo",
        "plugins/taskq-prefork",
        "plugins/taskq-sqlite",
        "plugins/taskq-redis",
        "plugins/taskq-amqp",
    ],
    # real workers serve /metrics (solo and prefork pools, SQLite and Redis), events with -E
    "taskq-prometheus": ["plugins/taskq-solo", "plugins/taskq-prefork", "plugins/taskq-sqlite", "plugins/taskq-redis"],
    # its tests read the spans of real workers (solo, thread and prefork pools), on SQLite and Redis
    "taskq-opentelemetry": [
        "plugins/taskq-solo",
        "plugins/taskq-thread",
        "plugins/taskq-prefork",
        "plugins/taskq-sqlite",
        "plugins/taskq-redis",
    ],
}
ROOT_PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")

#: The lock: every third-party version a session installs, nox and uv included.
LOCK = ROOT / "constraints.txt"
LOCK_COMMAND = "python3 -m nox -s lock"
#: What the lock is compiled from: every pyproject.toml a session installs from (the
#: workspace root, the distributions, the example plugin) and the requirement files.
PROJECTS = [ROOT, ROOT / "core", *PLUGINS, *sorted(p.parent for p in (ROOT / "examples").glob("*/pyproject.toml"))]
REQUIREMENT_FILES = [ROOT / "docs" / "requirements.txt", ROOT / "benchmarks" / "requirements.txt"]
#: Put in an environment by the tool that makes it (virtualenv, not uv), not by a session.
ENVIRONMENT_TOOLS = frozenset({"pip", "setuptools", "wheel"})

#: Programs a distribution's tests start themselves, and the Debian package of each.
TEST_PROGRAMS = {"taskq-memcached": {"memcached": "memcached"}, "taskq-dashboard": {"chromium": "chromium"}}


# ---- The lock -----------------------------------------------------------------------


def _project_requirements(pyproject: Mapping[str, object]) -> list[str]:
    """A pyproject.toml's runtime, optional, dependency-group and build requirements."""
    project = pyproject.get("project", {})
    build = pyproject.get("build-system", {})
    groups = pyproject.get("dependency-groups", {})
    assert isinstance(project, dict) and isinstance(build, dict) and isinstance(groups, dict)
    found: list[str] = [*project.get("dependencies", []), *build.get("requires", [])]
    for extra in project.get("optional-dependencies", {}).values():
        found.extend(extra)
    if groups:
        found.extend(nox.project.dependency_groups(pyproject, *groups))
    return found


def _file_requirements(path: Path) -> list[str]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split(" #", 1)[0].strip()
        if text and not text.startswith("#"):
            if text.startswith("-"):
                raise ValueError(f"{path.relative_to(ROOT)}: options such as {text!r} are not read into the lock")
            found.append(text)
    return found


def _declared() -> tuple[dict[str, list[str]], set[str]]:
    """Every third-party requirement a session may install, by the file that declares it;
    and the names of the workspace's own distributions, installed from their folders."""
    declared: dict[str, list[str]] = {}
    ours: set[str] = set()
    for folder in PROJECTS:
        pyproject = nox.project.load_toml(folder / "pyproject.toml")
        ours.add(canonicalize_name(pyproject["project"]["name"]))
        declared[str((folder / "pyproject.toml").relative_to(ROOT))] = _project_requirements(pyproject)
    for path in REQUIREMENT_FILES:
        declared[str(path.relative_to(ROOT))] = _file_requirements(path)
    third_party = {
        source: sorted({r for r in requirements if canonicalize_name(Requirement(r).name) not in ours})
        for source, requirements in declared.items()
    }
    return third_party, ours


def _locked() -> dict[str, set[Version]]:
    """The versions in the lock, by package name (a universal lock may hold two under markers)."""
    versions: dict[str, set[Version]] = defaultdict(set)
    if not LOCK.is_file():
        return versions
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line and line[0].isalnum():
            name, _, version = line.split(";", 1)[0].partition("==")
            versions[canonicalize_name(name.strip())].add(Version(version.strip()))
    return versions


def _applies(requirement: Requirement) -> bool:
    """Whether ``requirement`` is for Python 3.11, the only Python the lock is made for."""
    return requirement.marker is None or requirement.marker.evaluate(
        {"python_version": PYTHON, "python_full_version": f"{PYTHON}.0"}
    )


def _uncovered() -> list[str]:
    """Declared requirements the lock holds no version of that satisfies them."""
    locked = _locked()
    problems = []
    declared, _ = _declared()
    for source, requirements in declared.items():
        for text in requirements:
            requirement = Requirement(text)
            versions = locked.get(canonicalize_name(requirement.name), set())
            if _applies(requirement) and not any(requirement.specifier.contains(v, prereleases=True) for v in versions):
                has = ", ".join(str(v) for v in sorted(versions)) or "no version"
                problems.append(f"    {text} (in {source}): the lock has {has}")
    return problems


def _check_lock(session: nox.Session) -> None:
    """Fail before installing anything when a declared requirement is missing from the lock."""
    if not LOCK.is_file():
        session.error(f"{LOCK.name} is missing; write it with: {LOCK_COMMAND}")
    problems = _uncovered()
    if problems:
        session.error(
            f"{LOCK.name} is out of date: it has no version for these requirements:\n"
            + "\n".join(problems)
            + f"\nRegenerate it with: {LOCK_COMMAND}  (and commit {LOCK.name})"
        )


_LIST_INSTALLED = (
    "import importlib.metadata as m\n"
    "for d in m.distributions(): print(f'installed: {d.metadata[\"Name\"]}=={d.version}')"
)


def _check_installed(session: nox.Session) -> None:
    """Fail when the environment holds a third-party package at a version the lock does not name."""
    output = session.run_install("python", "-c", _LIST_INSTALLED, silent=True, log=False)
    if not isinstance(output, str):  # nox --no-install on a reused environment
        return
    locked = _locked()
    _, ours = _declared()
    strays = []
    for line in output.splitlines():
        if not line.startswith("installed: "):
            continue
        name, _, text = line.removeprefix("installed: ").partition("==")
        key = canonicalize_name(name)
        if key in ours or key in ENVIRONMENT_TOOLS:
            continue
        try:
            version = Version(text)
        except InvalidVersion:
            version = None
        if version not in locked.get(key, set()):
            has = ", ".join(str(v) for v in sorted(locked.get(key, set()))) or "nothing"
            strays.append(f"    {name} {text} (the lock has {has})")
    if strays:
        session.error(
            f"these packages were installed at versions {LOCK.name} does not lock:\n"
            + "\n".join(sorted(strays))
            + f"\nRegenerate the lock with: {LOCK_COMMAND}; or, if these are left over in a reused "
            f"environment, recreate it: nox --no-reuse-existing-virtualenvs -s {session.name!r}"
        )


def _pip_install(session: nox.Session, *args: str, env: Mapping[str, str] | None = None) -> None:
    """``session.install(*args)`` at the locked versions, then check nothing unlocked came in."""
    _check_lock(session)
    # Through the environment too: the build back ends of our own distributions (hatchling)
    # and the environments tests make for themselves (the example plugin's) use the lock.
    session.env.update({"UV_CONSTRAINT": str(LOCK), "UV_BUILD_CONSTRAINT": str(LOCK), "PIP_CONSTRAINT": str(LOCK)})
    session.install("-c", str(LOCK), *args, env=env)
    _check_installed(session)


def _install(session: nox.Session, *folders: str, groups: tuple[str, ...] = ("test",)) -> None:
    """Install the distributions in ``folders`` (editable) with their and the root's ``groups``."""
    requirements: list[str] = list(nox.project.dependency_groups(ROOT_PYPROJECT, *groups))
    for folder in folders:
        pyproject = nox.project.load_toml(ROOT / folder / "pyproject.toml")
        present = [g for g in groups if g in pyproject.get("dependency-groups", {})]
        if present:
            requirements.extend(nox.project.dependency_groups(pyproject, *present))
    editable = [arg for folder in folders for arg in ("-e", str(ROOT / folder))]
    _pip_install(session, *editable, *sorted(set(requirements)))


def _pytest(session: nox.Session, *paths: str) -> None:
    session.run("pytest", *(session.posargs or paths))


def _uv() -> list[str]:
    """How to run the uv installed beside nox (the README's command puts both in one Python)."""
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    return ["uv"]


# ---- Programs the tests start -------------------------------------------------------


def _ensure_programs(session: nox.Session, programs: Mapping[str, str]) -> None:
    """Install the Debian packages of ``programs`` ({program: package}) missing from PATH."""
    missing = {program: package for program, package in programs.items() if shutil.which(program) is None}
    if not missing:
        return
    packages = sorted(set(missing.values()))
    install = ["apt-get", "install", "-y", "-q", *packages]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        session.error(
            f"these tests start {', '.join(sorted(missing))}, which is not installed. On Debian or Ubuntu, "
            f"install it with:\n    sudo apt-get update && sudo {' '.join(install)}\n"
            f"(elsewhere, your system's package for it), then run this session again"
        )
    session.log(f"installing {', '.join(packages)} (not found on PATH) for these tests")
    apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run_install("apt-get", "update", "-q", env=apt_env, external=True)
    session.run_install(*install, env=apt_env, external=True)


# ---- Sessions -----------------------------------------------------------------------


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff: lint and formatting over the repository."""
    _pip_install(session, *nox.project.dependency_groups(ROOT_PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over core and every plugin, installed together."""
    _install(session, "core", *(f"plugins/{p.name}" for p in PLUGINS), groups=("typecheck",))
    session.run("mypy", "core/src/taskq", *(str(p / "src") for p in PLUGINS))
    # the types user code sees (assert_type), checked, never run
    session.run("mypy", "core/tests/typing")


@nox.session(python=PYTHON)
@nox.parametrize("dist", list(DISTS))
def tests(session: nox.Session, dist: str) -> None:
    """Test one distribution installed alone with taskq-core: unit + integration."""
    folder = DISTS[dist]
    companions = TEST_COMPANIONS.get(dist, [])
    _ensure_programs(session, TEST_PROGRAMS.get(dist, {}))
    _install(session, *dict.fromkeys(["core", folder, *companions]))
    _pytest(session, f"{folder}/tests")


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """Top-level tests/: every distribution together, end to end (faults have their own session)."""
    _install(session, "core", *(f"plugins/{p.name}" for p in PLUGINS))
    _pytest(session, "tests", "--ignore=tests/interop", "--ignore=tests/faults")


@nox.session(python=PYTHON)
def faults(session: nox.Session) -> None:
    """tests/faults: kill -9 storms, SIGTERM, broker restarts and fuzzed messages, with a summary."""
    _install(session, "core", *(f"plugins/{p.name}" for p in PLUGINS))
    _pytest(session, "tests/faults")


@nox.session(python=PYTHON)
def interop(session: nox.Session) -> None:
    """taskq and Celery 5 on one broker (Redis, RabbitMQ), in both directions."""
    folders = ("core", "plugins/taskq-solo", "plugins/taskq-redis", "plugins/taskq-amqp", "plugins/taskq-opentelemetry")
    _install(session, *folders, groups=("test", "interop"))
    _pytest(session, "tests/interop")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation with mkdocs; warnings are errors."""
    _pip_install(session, "-r", "docs/requirements.txt")
    session.run("mkdocs", "build", "--strict", "--site-dir", str(Path(session.create_tmp()) / "site"))


@nox.session(python=PYTHON, default=False)
def demo(session: nox.Session) -> None:
    """The README's tour: a worker, a batch of tasks with failures and retries, on SQLite."""
    _install(session, "core", "plugins/taskq-solo", "plugins/taskq-sqlite", groups=())
    session.chdir(session.create_tmp())
    session.run("python", str(ROOT / "examples" / "demo" / "run_demo.py"), *session.posargs)


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with Celery, huey, Dramatiq, taskiq (`-- --suite redis|rabbitmq|pools`), then more."""
    # Installed as users install them: built, not editable, with their bytecode compiled
    # (Celery's too). Editable sources under PYTHONDONTWRITEBYTECODE, which this machine
    # sets, would be compiled again at every worker start, and start-up would measure that.
    session.env["UV_COMPILE_BYTECODE"] = "1"
    # Every distribution is installed here: taskq-opentelemetry would trace taskq's rows
    # (a user of taskq-core and a broker has no tracing), so it is switched off.
    session.env["TASKQ_OPENTELEMETRY_ENABLED"] = "false"
    # Built afresh every run: an installed 0.1.0 (or a wheel uv built before) would
    # otherwise be kept, and the benchmark would measure older code.
    ours = [str(ROOT / "core"), *(str(ROOT / "plugins" / p.name) for p in PLUGINS)]
    if session.venv_backend == "uv":
        names = ["taskq-core", *(p.name for p in PLUGINS)]
        _pip_install(session, *(f"--reinstall-package={name}" for name in names), *ours, env={"UV_NO_CACHE": "1"})
    else:
        _pip_install(session, "--force-reinstall", "--no-deps", *ours)
        _pip_install(session, *ours)
    _pip_install(session, "-r", "benchmarks/requirements.txt")
    session.run("python", "-m", "benchmarks.run", *session.posargs)
    if not session.posargs:
        # Every result backend's store-and-fetch rate against Redis's, in the same run.
        session.run("python", "-m", "benchmarks.backends")
        # A chord of 1,000 and a chain of 100 on Redis, taskq against Celery.
        session.run("python", "-m", "benchmarks.canvas")
        # Events under load on each broker: what a reader gets of what a busy sender sends.
        session.run("python", "-m", "benchmarks.events")
        # The dashboard's ingest rate and request times on a 100,000-task history.
        session.run("python", "-m", "benchmarks.dashboard")
        # How many events a second taskq-prometheus's ClusterMetrics absorbs on one core.
        session.run("python", "-m", "benchmarks.prometheus_events")
        # I/O-bound tasks (10 ms waits, -c 100) on taskq's and Celery's concurrent pools.
        session.run("python", "-m", "benchmarks.io_bound")
        # Drain, enqueue and worker memory with 1,000,000 waiting and 100,000 scheduled tasks
        # on each broker, and 1 against 4 workers on Redis (about fifteen minutes).
        session.run("python", "-m", "benchmarks.backlog")


@nox.session(python=False, default=False)
def lock(session: nox.Session) -> None:
    """Regenerate constraints.txt from every declared requirement (`-- --upgrade` moves all to the newest)."""
    declared, _ = _declared()
    with tempfile.TemporaryDirectory() as folder:
        # One input file per source, so that the lock says which file asked for a package.
        inputs = []
        for source, requirements in declared.items():
            name = source.replace("/", "_").removesuffix(".txt").removesuffix(".toml") + ".in"
            (Path(folder) / name).write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
            inputs.append(name)
        with session.chdir(folder):
            # Universal: one lock for every platform a contributor may use, for Python 3.11.
            # Versions already locked are kept unless they no longer fit or posargs say
            # --upgrade / --upgrade-package NAME.
            session.run(
                *_uv(),
                "pip",
                "compile",
                "--quiet",
                "--universal",
                f"--python-version={PYTHON}",
                f"--custom-compile-command={LOCK_COMMAND}",
                f"--output-file={LOCK}",
                *inputs,
                *session.posargs,
                external=True,
            )
    problems = _uncovered()
    if problems:
        session.error("the new lock still misses:\n" + "\n".join(problems))
    session.log(f"wrote {LOCK.relative_to(ROOT)}; commit it with the change that needed it")
