"""Errors a user can fix. The command line prints their message as one line and exits non-zero."""

from __future__ import annotations


class TuneflowError(Exception):
    """Base of every error whose message tells the user what to change."""


class ConfigError(TuneflowError, ValueError):
    """A configuration or command-line value that cannot work; the message names it and the fix."""


class MetricIsNaN(TuneflowError):
    """A trial's validation metric became NaN (diverged training): the trial fails, the study goes on."""


class TooManyFailures(TuneflowError):
    """More trials failed than ``max_failure_rate`` allows: the study stops, nothing recorded is lost."""
