"""The event camera: snapshots of the cluster's state at a steady pace (taskq events --camera)."""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner

from taskq import App
from taskq.events import EventDispatcher
from taskq.events.snapshot import Polaroid, run_camera
from taskq.events.state import State


class Recorder(Polaroid):
    """Keeps, at each shot, how many tasks the state knew; fails on its second shot."""

    seen: list[int]
    #: Set at the first shot: the test sends its events only after it, whatever the machine's load.
    first_shot = threading.Event()

    def on_shutter(self, state: State) -> None:
        self.seen = [*getattr(self, "seen", []), len(state.tasks)]
        Recorder.first_shot.set()
        if len(self.seen) == 2:
            raise RuntimeError("a camera's own bug")

    def on_cleanup(self) -> None:
        self.cleaned = True


@pytest.fixture
def app(memory_url: str) -> App:
    return App("camera", broker=memory_url, read_config=False)


def test_a_camera_shoots_at_its_pace_goes_on_after_an_error_and_shoots_once_more_at_the_end(app: App) -> None:
    dispatcher = EventDispatcher(app, "w1@host", flush_interval=0.01)

    Recorder.first_shot.clear()

    def send() -> None:
        if not Recorder.first_shot.wait(10):
            return  # the camera never shot: the assertions below say so
        for n in range(5):
            dispatcher.send("task-received", uuid=f"t{n}", name="proj.add")
        dispatcher.close()

    threading.Thread(target=send, daemon=True).start()
    camera = run_camera(app, Recorder, frequency=0.2, timeout=3.0)
    assert isinstance(camera, Recorder)
    assert camera.shots >= 5  # about one every 0.2 s, and the last one
    assert camera.seen[0] == 0 and camera.seen[-1] == 5
    assert camera.cleaned


def test_a_frequency_must_be_above_zero() -> None:
    with pytest.raises(ValueError, match="above 0"):
        Recorder(State(), frequency=0)


def test_taskq_events_camera_runs_a_camera_or_says_why_not(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from taskq.cli import state as cli_state
    from taskq.cli.commands import cli

    monkeypatch.setattr(cli_state.CLIState, "app", property(lambda self: app))
    runner = CliRunner()
    ran = runner.invoke(cli, ["events", "--camera", "taskq.events.snapshot.Polaroid", "-F", "0.2", "--timeout", "0.7"])
    assert ran.exit_code == 0, ran.output
    assert "snapshot(s) taken" in ran.output
    wrong = runner.invoke(cli, ["events", "--camera", "taskq.events.state.State"])
    assert wrong.exit_code == 2 and "no subclass of taskq.events.snapshot.Polaroid" in wrong.output
    missing = runner.invoke(cli, ["events", "--camera", "nowhere.Camera"])
    assert missing.exit_code == 2 and "cannot import 'nowhere.Camera'" in missing.output
