"""Every job a developer or CI runs. ``nox -l`` is the menu; ``nox`` runs the defaults."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PYTHON = "3.11"
PLUGINS = sorted(p for p in (ROOT / "plugins").glob("taskq-*") if (p / "pyproject.toml").is_file())
DISTS = {"taskq-core": "core"} | {p.name: f"plugins/{p.name}" for p in PLUGINS}
#: Distributions a distribution's tests need beside taskq-core. Core's own worker tests
#: need a pool, and the lightest one is solo.
TEST_COMPANIONS = {"taskq-core": ["plugins/taskq-solo"]}
ROOT_PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")


def _install(session: nox.Session, *folders: str, groups: tuple[str, ...] = ("test",)) -> None:
    """Install the distributions in ``folders`` (editable) with their and the root's ``groups``."""
    requirements: list[str] = list(nox.project.dependency_groups(ROOT_PYPROJECT, *groups))
    for folder in folders:
        pyproject = nox.project.load_toml(ROOT / folder / "pyproject.toml")
        present = [g for g in groups if g in pyproject.get("dependency-groups", {})]
        if present:
            requirements.extend(nox.project.dependency_groups(pyproject, *present))
    editable = [arg for folder in folders for arg in ("-e", str(ROOT / folder))]
    session.install(*editable, *sorted(set(requirements)))


def _pytest(session: nox.Session, *paths: str) -> None:
    session.run("pytest", *(session.posargs or paths))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff: lint and formatting over the repository."""
    session.install(*nox.project.dependency_groups(ROOT_PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over core and every plugin, installed together."""
    _install(session, "core", *(f"plugins/{p.name}" for p in PLUGINS), groups=("typecheck",))
    session.run("mypy", "core/src/taskq", *(str(p / "src") for p in PLUGINS))


@nox.session(python=PYTHON)
@nox.parametrize("dist", list(DISTS))
def tests(session: nox.Session, dist: str) -> None:
    """Test one distribution installed alone with taskq-core: unit + integration."""
    folder = DISTS[dist]
    companions = TEST_COMPANIONS.get(dist, [])
    _install(session, *dict.fromkeys(["core", folder, *companions]))
    _pytest(session, f"{folder}/tests")


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """Top-level tests/: every distribution together, end to end and faults."""
    _install(session, "core", *(f"plugins/{p.name}" for p in PLUGINS))
    _pytest(session, "tests", "--ignore=tests/interop")


@nox.session(python=PYTHON)
def interop(session: nox.Session) -> None:
    """taskq and Celery 5 on one broker (Redis, RabbitMQ), in both directions."""
    _install(session, "core", "plugins/taskq-solo", "plugins/taskq-redis", "plugins/taskq-amqp")
    session.install("celery[redis]>=5,<6")
    _pytest(session, "tests/interop")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation with mkdocs; warnings are errors."""
    session.install("-r", "docs/requirements.txt")
    session.run("mkdocs", "build", "--strict", "--site-dir", str(Path(session.create_tmp()) / "site"))


@nox.session(python=PYTHON, default=False)
def demo(session: nox.Session) -> None:
    """The README's tour: a worker, a batch of tasks with failures and retries, on SQLite."""
    _install(session, "core", "plugins/taskq-solo", "plugins/taskq-sqlite", groups=())
    session.chdir(session.create_tmp())
    session.run("python", str(ROOT / "examples" / "demo" / "run_demo.py"), *session.posargs)


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks side by side with Celery and huey (`-- --suite pools|redis|rabbitmq`), then backends."""
    # Installed as users install them: built, not editable, with their bytecode compiled
    # (Celery's too). Editable sources under PYTHONDONTWRITEBYTECODE, which this machine
    # sets, would be compiled again at every worker start, and start-up would measure that.
    session.env["UV_COMPILE_BYTECODE"] = "1"
    # Built afresh every run: an installed 0.1.0 (or a wheel uv built before) would
    # otherwise be kept, and the benchmark would measure older code.
    ours = [str(ROOT / "core"), *(str(ROOT / "plugins" / p.name) for p in PLUGINS)]
    if session.venv_backend == "uv":
        names = ["taskq-core", *(p.name for p in PLUGINS)]
        session.install(*(f"--reinstall-package={name}" for name in names), *ours, env={"UV_NO_CACHE": "1"})
    else:
        session.install("--force-reinstall", "--no-deps", *ours)
        session.install(*ours)
    session.install("-r", "benchmarks/requirements.txt")
    session.run("python", "-m", "benchmarks.run", *session.posargs)
    if not session.posargs:
        # Every result backend's store-and-fetch rate against Redis's, in the same run.
        session.run("python", "-m", "benchmarks.backends")
