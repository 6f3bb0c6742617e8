"""Faults around the embedded stores (Optuna's journal, MLflow's SQLite), as a user meets them: a kill or a
full disk while the first run creates them, a store that is garbage or cut short, runs left RUNNING by a
killed process, an Optuna store emptied under its MLflow runs. Each ends in one line ``tuneflow: error: ...`` (exit status 2,
records byte for byte as they were) or is repaired by the next run, never in a store broken for good."""

from __future__ import annotations

import hashlib
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import load_study, mlflow_client, run_tuneflow, tuneflow_env

pytestmark = pytest.mark.slow

Q = ["+arch=quadratic", "-m", "hydra.sweeper.n_trials=2"]


def fingerprint(project: Path) -> dict[str, str]:
    return {
        str(path.relative_to(project)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((project / "mlruns").rglob("*"))
        if path.is_file() and not path.name.endswith(("-wal", "-shm", ".lock"))
    }


def one_error_line(result: Any) -> str:
    stderr = str(result.stderr)
    assert "Traceback" not in stderr, stderr
    return str(stderr.strip().splitlines()[-1])


def run_python(project: Path, code: str, *args: str, limit_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # a full disk, for this process: writes past limit_bytes fail (EFBIG), as on ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-c", code, *args], cwd=project, env=tuneflow_env(), capture_output=True,
                          text=True, timeout=300, preexec_fn=limit)


TUNEFLOW = "import runpy, sys; sys.argv[0] = 'tuneflow'; runpy.run_module('tuneflow', run_name='__main__')"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose study ran 2 trials; tests copy it before they change it."""
    project = tmp_path_factory.mktemp("faults")
    done = run_tuneflow(project, *Q)
    assert done.returncode == 0, done.output
    return project


def copy_of(finished: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(finished, tmp_path / "project"))


def test_a_kill_while_the_first_run_migrates_mlflow_leaves_no_store_and_the_next_run_works(project: Path) -> None:
    # SIGKILL at MLflow's first column migration (about 2.4 s into a first run).
    killed = run_python(project, "import os, signal, alembic.ddl.impl\n"
                        "alembic.ddl.impl.DefaultImpl.add_column = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
                        + TUNEFLOW, *Q)
    assert killed.returncode == -signal.SIGKILL
    assert not (project / "mlruns" / "mlflow.db").exists()
    done = run_tuneflow(project, *Q)
    assert done.returncode == 0, done.output
    assert [t.state.name for t in load_study(project, "quadratic").trials] == ["COMPLETE", "COMPLETE"]
    assert sorted(p.name for p in (project / "mlruns").glob(".*creating*")) == []


def test_a_full_disk_on_the_first_run_is_one_line_and_the_run_after_it_works(project: Path) -> None:
    full = run_python(project, TUNEFLOW, *Q, limit_bytes=300_000)  # MLflow's schema needs ~1 MB
    assert full.returncode == 2
    line = one_error_line(full)
    assert line.startswith(f"tuneflow: error: cannot create {project / 'mlruns' / 'mlflow.db'}: ")
    assert line.endswith("(is the disk full, or the folder read-only?)")
    assert not (project / "mlruns" / "mlflow.db").exists()
    done = run_tuneflow(project, *Q)
    assert done.returncode == 0, done.output


def test_a_full_disk_in_the_middle_of_a_study_is_one_line(project: Path) -> None:
    # On SQLite (hydra/sweeper/storage=sqlite) Optuna's store reaches the limit first, in the sweeper's own
    # writes.
    result = run_python(project, TUNEFLOW, "+arch=quadratic", "-m", "hydra.sweeper.n_trials=40",
                        "hydra/sweeper/storage=sqlite", limit_bytes=990_000)
    assert result.returncode == 2
    line = one_error_line(result)
    stores = f"sqlite:///{project / 'mlruns' / 'optuna.db'} or sqlite:///{project / 'mlruns' / 'mlflow.db'}"
    assert line.startswith(f"tuneflow: error: study 'quadratic': cannot write to {stores}: "), line
    assert line.endswith("(is the disk full, or the folder read-only?)"), line


def test_a_full_disk_in_the_middle_of_a_study_on_the_journal_stops_at_the_first_trial_mlflow_refuses(
        project: Path) -> None:
    # The journal (the default) grows far slower than MLflow's store, so MLflow's store reaches the limit
    # first, inside a trial: the study stops there with the store's line, not after max_failure_rate failed
    # trials. (The journal's own full disk: tests/storage/test_journal.py.)
    result = run_python(project, TUNEFLOW, "+arch=quadratic", "-m", "hydra.sweeper.n_trials=40", limit_bytes=990_000)
    assert result.returncode == 2
    line = one_error_line(result)
    assert re.fullmatch(rf"tuneflow: error: trial \d+: cannot write to sqlite:///{re.escape(str(project))}/mlruns/"
                        r"mlflow\.db: .+ \(is the disk full, or the folder read-only\?\)", line), line
    study = load_study(project, "quadratic")
    assert sum(t.state.name == "FAIL" for t in study.trials) == 1, "the study stopped at the first refused trial"


# A journal cut short is no damage but an append that never finished: the next run drops it
# (tests/storage/test_journal.py).
@pytest.mark.parametrize(("store", "damage"), [("optuna.journal", "garbage"), ("mlflow.db", "garbage"),
                                               ("mlflow.db", "truncated")])
def test_a_damaged_store_is_one_line_in_the_sweeper_and_in_report_and_is_left_as_it_is(
        finished: Path, tmp_path: Path, store: str, damage: str) -> None:
    project = copy_of(finished, tmp_path)
    path = project / "mlruns" / store
    data = path.read_bytes()
    path.write_bytes(b"\x00garbage\xff" * 4096 if damage == "garbage" else data[: len(data) // 3])
    before = fingerprint(project)
    for args in (Q, ["report", "quadratic"]):
        result = run_tuneflow(project, *args)
        assert result.returncode == 2, result.output
        line = one_error_line(result)
        assert line.startswith(f"tuneflow: error: {path} is not an ") and line.endswith("move it away to start a new store "
                                                                                         "(or restore it from a backup)"), line
        assert fingerprint(project) == before


def test_runs_a_killed_process_left_running_are_closed_by_the_next_run(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    client = mlflow_client(project)
    experiment = client.get_experiment_by_name("quadratic").experiment_id
    runs = {r.data.tags["tuneflow.role"] + r.data.tags.get("tuneflow.trial_number", ""): r.info.run_id
            for r in client.search_runs([experiment])}
    # What a process killed after Optuna recorded its trials, and before MLflow did, leaves.
    for run_id in (runs["study"], runs["trial1"]):
        client.update_run(run_id, status="RUNNING")
    done = run_tuneflow(project, *Q)  # nothing left to run: it only opens the study
    assert done.returncode == 0, done.output
    assert "closed 1 MLflow run(s) left RUNNING by trials that had ended" in done.output
    assert client.get_run(runs["trial1"]).info.status == "FINISHED"
    assert client.get_run(runs["study"]).info.status == "FINISHED"


def test_an_emptied_optuna_store_beside_the_studys_runs_is_refused(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    (project / "mlruns" / "optuna.journal").unlink()
    before = fingerprint(project)
    result = run_tuneflow(project, *Q)
    assert result.returncode == 2
    assert one_error_line(result) == (
        "tuneflow: error: study 'quadratic': MLflow experiment 'quadratic' holds trial runs of a study 'quadratic' "
        "that the Optuna storage does not hold (was it emptied or replaced?); restore it, or use another "
        "hydra.sweeper.study_name")
    assert fingerprint(project) == before


def test_an_artifact_folder_that_is_a_file_is_one_line_before_anything_is_created(project: Path) -> None:
    (project / "mlruns").mkdir()
    (project / "mlruns" / "artifacts").write_text("not a folder\n")
    result = run_tuneflow(project, *Q)
    assert result.returncode == 2
    assert one_error_line(result) == (f"tuneflow: error: cannot write MLflow artifacts to {project / 'mlruns' / 'artifacts'}: "
                                      f"{project / 'mlruns' / 'artifacts'} is not a writable folder")
    assert sorted(p.name for p in (project / "mlruns").iterdir()) == ["artifacts"]
