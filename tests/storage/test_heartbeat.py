"""Heartbeats: one beater per trial and process, and the sweeper's thread does not repeat the beat it
recorded at ask. Each beat is a storage commit, so these decide how many a short trial costs."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest

from tuneflow.storage.study import Heartbeat, open_storage


class CountingStorage:
    """Records which trials were beaten for, through the one method Heartbeat calls."""

    def __init__(self, real: optuna.storages.RDBStorage) -> None:
        self.real = real
        self.beats: list[int] = []

    def record_heartbeat(self, trial_id: int) -> None:
        self.beats.append(trial_id)
        self.real.record_heartbeat(trial_id)


@pytest.fixture
def trial_id(tmp_path: Path) -> tuple[CountingStorage, int]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat_interval=60)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    return CountingStorage(storage), trial._trial_id


def test_a_job_in_the_sweepers_process_adds_no_second_beater(trial_id: tuple[CountingStorage, int]) -> None:
    storage, tid = trial_id
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Heartbeat(storage, tid, 60, beat_now=False):  # the sweeper, which beat at ask
            with Heartbeat(storage, tid, 60):  # the job, in the same process
                pass
    assert storage.beats == [], "neither repeats the beat recorded at ask within the interval"
    with Heartbeat(storage, tid, 60):  # a job on its own (another process's view): beats at once
        pass
    assert storage.beats == [tid]


def test_the_beater_beats_again_after_its_interval(trial_id: tuple[CountingStorage, int]) -> None:
    storage, tid = trial_id
    beater = Heartbeat(storage, tid, 1, beat_now=False)
    with beater:
        beater._stop.wait(2.5)
    assert storage.beats and set(storage.beats) == {tid}, "the delayed first beat comes after one interval"
