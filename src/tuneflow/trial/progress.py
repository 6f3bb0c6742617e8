"""A running trial as the user sees it: a live line on the console, and the trial's own log file.

``tuneflow.report`` drives both, so any app that reports gets them, under any launcher:

- On a terminal, one status line (``trial 3 running: step 7, val_loss=0.4123, 45s``) rewritten in
  place at each report and cleared when the trial ends, so the sweeper's one line per finished trial
  follows on a clean line. Anywhere else (a file, a pipe, CI), the same text as a plain line at most
  every ``interval`` seconds, so a log shows a long trial is alive without one line per step.
- The trial's log file (Hydra's job log, ``trial_N/<job>.log``): what the job was launched with, every
  report, and how the trial ended. These lines go to the job's file handlers only: the console keeps
  one line per trial.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

#: Seconds between two plain progress lines of one trial when the console is not a terminal.
DEFAULT_INTERVAL = 30.0
#: A terminal's status line is redrawn at most this often (a fast loop reports thousands of times).
_REDRAW_SECONDS = 0.1
#: Metrics shown on the progress line when the objective is unknown.
_SHOWN_METRICS = 2

#: The logger of the trial's log file; its records never reach the console (see ``trial_log``).
TRIAL_LOGGER = "tuneflow.trial.log"


def trial_log() -> logging.Logger:
    """The job's log file(s) as a logger of their own: the file handlers Hydra's ``job_logging`` put on
    the root logger for this job (``trial_N/<job>.log``), without its console handler.

    Hydra sets new handlers for every job, so this is called at the start of each trial; without a
    file handler (a launcher that configures no job logging) the records go nowhere.
    """
    logger = logging.getLogger(TRIAL_LOGGER)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    return logger


def close_trial_log() -> None:
    """Drop the job's file handlers: the next job has its own file."""
    logging.getLogger(TRIAL_LOGGER).handlers = []


def metrics_text(metrics: Mapping[str, object]) -> str:
    return ", ".join(f"{name}={_number(value)}" for name, value in metrics.items())


def _number(value: object) -> str:
    try:
        return f"{float(value):.6g}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)


class LiveProgress:
    """The console's view of one running trial (see the module doc)."""

    def __init__(
        self,
        number: int | None,
        objective: str | None,
        interval: float | None = DEFAULT_INTERVAL,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.number = number
        self.objective = objective
        #: None or 0: no progress on the console (the trial's log file still gets every report).
        self.interval = interval or None
        self.stream = stream if stream is not None else sys.stdout
        self.clock = clock
        self.started = clock()
        self.live = _is_terminal(self.stream)
        self._shown_at: float | None = None
        self._line_shown = False

    def update(self, step: int, metrics: Mapping[str, float], objective: float | None) -> None:
        """A report of the trial: redraw the status line, or print a plain line once ``interval`` passed."""
        if self.interval is None:
            return
        now = self.clock()
        if self.live:
            if self._shown_at is not None and now - self._shown_at < _REDRAW_SECONDS:
                return
            self._write("\r\x1b[K" + self.text(step, metrics, objective, now))
            self._line_shown = True
        else:
            if now - (self._shown_at if self._shown_at is not None else self.started) < self.interval:
                return
            self._write(self.text(step, metrics, objective, now) + "\n")
        self._shown_at = now

    def text(self, step: int, metrics: Mapping[str, float], objective: float | None, now: float) -> str:
        if objective is not None:
            shown = metrics_text({self.objective or "objective": objective})
        else:
            shown = metrics_text(dict(list(metrics.items())[:_SHOWN_METRICS]))
        number = "" if self.number is None else f" {self.number}"
        return f"trial{number} running: step {step}{', ' + shown if shown else ''}, {now - self.started:.1f}s"

    def close(self) -> None:
        """Clear the status line, so the next line starts at the left margin."""
        if self._line_shown:
            self._write("\r\x1b[K")
            self._line_shown = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken console must not fail the trial
            pass


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def outcome_text(state: str, value: float | None, pruned_at: int | None, error: str | None, seconds: float,
                 run_id: str | None) -> str:
    """How the trial ended, for its log file (the console's line says it with the study's counts)."""
    detail = {"PRUNED": f" at step {pruned_at}", "FAIL": f" ({error})"}.get(state, "")
    shown = "" if value is None else f" value={_number(value)}"
    return f"{state}{detail}{shown} in {seconds:.1f}s; MLflow run {run_id}"
