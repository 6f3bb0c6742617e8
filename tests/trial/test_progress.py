"""A running trial on the console (a terminal's status line, or plain lines every interval) and in its
log file, as ``tuneflow.report`` drives them."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import tuneflow
from tuneflow.trial import api
from tuneflow.trial.progress import LiveProgress, close_trial_log, trial_log


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def reporting(progress: LiveProgress, clock: Clock, steps: int, seconds_per_step: float) -> None:
    trial = api.Trial(number=7, params={}, run_id=None, study_name="s", objective="val_loss", progress=progress)
    with api.running(trial):
        for step in range(1, steps + 1):
            clock.now += seconds_per_step
            tuneflow.report(step, {"val_loss": 1.0 / step, "train_loss": 2.0})


def test_off_a_terminal_a_plain_line_every_interval_not_every_report() -> None:
    clock, out = Clock(), io.StringIO()
    progress = LiveProgress(7, "val_loss", interval=10.0, stream=out, clock=clock)
    reporting(progress, clock, steps=12, seconds_per_step=3.0)  # 36 s: a line at 12 s, 24 s and 36 s
    progress.close()
    assert out.getvalue().splitlines() == [
        "trial 7 running: step 4, val_loss=0.25, 12.0s",
        "trial 7 running: step 8, val_loss=0.125, 24.0s",
        "trial 7 running: step 12, val_loss=0.0833333, 36.0s",
    ]


def test_a_trial_shorter_than_the_interval_prints_nothing_and_zero_turns_progress_off() -> None:
    clock, out = Clock(), io.StringIO()
    reporting(LiveProgress(7, "val_loss", interval=60.0, stream=out, clock=clock), clock, steps=5, seconds_per_step=1.0)
    reporting(LiveProgress(7, "val_loss", interval=0, stream=out, clock=clock), clock, steps=5, seconds_per_step=100.0)
    assert out.getvalue() == ""


def test_on_a_terminal_one_status_line_redrawn_in_place_and_cleared_at_the_end() -> None:
    clock, out = Clock(), Terminal()
    progress = LiveProgress(7, "val_loss", interval=30.0, stream=out, clock=clock)
    reporting(progress, clock, steps=3, seconds_per_step=1.0)
    progress.close()
    text = out.getvalue()
    assert "\n" not in text, "the status line never scrolls the console"
    assert text.split("\r\x1b[K") == [
        "",
        "trial 7 running: step 1, val_loss=1, 1.0s",
        "trial 7 running: step 2, val_loss=0.5, 2.0s",
        "trial 7 running: step 3, val_loss=0.333333, 3.0s",
        "",
    ]


def test_without_a_named_objective_the_line_shows_the_first_metrics() -> None:
    clock, out = Clock(), io.StringIO()
    progress = LiveProgress(None, None, interval=1.0, stream=out, clock=clock)
    clock.now += 2
    progress.update(3, {"a": 1.5, "b": 2.0, "c": 3.0}, None)
    assert out.getvalue() == "trial running: step 3, a=1.5, b=2, 2.0s\n"


def test_the_trial_log_goes_to_the_jobs_log_file_only(tmp_path: Path) -> None:
    root = logging.getLogger()
    console, file = logging.StreamHandler(io.StringIO()), logging.FileHandler(tmp_path / "job.log")
    root.addHandler(console)
    root.addHandler(file)
    try:
        log = trial_log()
        trial = api.Trial(number=1, params={}, run_id=None, study_name="s", objective="val_loss", log=log)
        with api.running(trial):
            tuneflow.report(1, {"val_loss": 0.5})
            tuneflow.report(2, {"train_loss": 0.1}, value=0.25)
        close_trial_log()
        log.info("after the trial: nowhere")
    finally:
        root.removeHandler(console)
        root.removeHandler(file)
        file.close()
    assert (tmp_path / "job.log").read_text().splitlines() == [
        "step 1: val_loss=0.5", "step 2: train_loss=0.1, val_loss=0.25"
    ]
    assert console.stream.getvalue() == ""
