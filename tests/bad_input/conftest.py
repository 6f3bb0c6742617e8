"""The bad-input suite's shared pieces: one prepared project, copied for every case, and the check that a
case left it byte-for-byte as it was.

Every case runs in its own copy of one project that holds a finished study (``quadratic``, 2 trials) and
a few files a case may need (a file where a folder is expected, user architectures). Most cases run
``tuneflow``'s entry point in this process (about 1 s each instead of 4 s for a new interpreter); the
few that could hang or that start child processes of their own run as a subprocess with a timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import run_tuneflow, tuneflow_env

#: The password every secret case uses: it must appear nowhere in the output or the project.
PASSWORD = "hunter2"

#: Sockets bound for the whole test session and never listening: their ports refuse connections, and no
#: other process can take them meanwhile (a port bound and released could be reused before the case runs).
_HELD: list[socket.socket] = []


def closed_port() -> int:
    """A local port that refuses connections for as long as the tests run."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
    return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Case:
    """One mistaken or hostile input: ``python -m tuneflow ARGS`` in the prepared project."""

    args: list[str]
    #: Text the one error line must contain (it names what to fix).
    message: str
    env: dict[str, str] = field(default_factory=dict)
    #: Files written into the case's project copy before it runs: relative path -> text or bytes.
    files: dict[str, str | bytes] = field(default_factory=dict)
    #: Run in a new interpreter (for what could hang, or starts processes of its own).
    subprocess: bool = False
    #: Exit status expected (2 = a usage error).
    status: int = 2


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    #: The traceback, when the entry point raised instead of exiting.
    traceback: str = ""


def fingerprint(project: Path) -> dict[str, str]:
    """Every file of the project and its bytes' hash. Database side files and locks come and go with every
    reader; Hydra writes a plain run's output folder (``outputs/``) before its task starts, and a
    multirun's (``multirun/``) only once the sweep was planned."""
    prints = {}
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if relative.parts[0] in ("outputs",) or path.name.endswith(("-wal", "-shm", ".lock", "-journal")):
            continue
        if path.is_file():
            prints[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir() and not any(path.iterdir()):
            prints[str(relative) + "/"] = "empty folder"
    return prints


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose study ``quadratic`` already ran 2 trials (made once per test session)."""
    project = tmp_path_factory.mktemp("prepared") / "project"
    project.mkdir()
    done = run_tuneflow(project, "+arch=quadratic", "-m", "hydra.sweeper.n_trials=2", "tracking.log_model=false")
    assert done.returncode == 0, done.output
    shutil.rmtree(project / "multirun", ignore_errors=True)
    (project / "blocker").write_text("a file where a folder is expected\n")
    return project


@dataclass
class Project:
    """A fresh copy of the prepared project and its fingerprint before the case."""

    path: Path
    before: dict[str, str]

    def run(self, case: Case) -> Outcome:
        for relative, content in case.files.items():
            target = self.path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        self.before = fingerprint(self.path)
        if case.subprocess:
            return run_subprocess(self.path, case)
        return run_in_process(self.path, case)

    def unchanged(self) -> bool:
        return fingerprint(self.path) == self.before


@pytest.fixture
def project_copy(prepared: Path, tmp_path: Path) -> Project:
    path = tmp_path / "project"
    shutil.copytree(prepared, path)
    return Project(path, fingerprint(path))


def run_subprocess(project: Path, case: Case, timeout: float = 120) -> Outcome:
    env = {**tuneflow_env(), **case.env}
    try:
        done = subprocess.run([sys.executable, "-m", "tuneflow", *case.args], cwd=project, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        return Outcome(-1, str(expired.stdout or ""), f"timed out after {timeout} s\n{expired.stderr or ''}")
    return Outcome(done.returncode, done.stdout, done.stderr)


@contextlib.contextmanager
def isolated_process_state(project: Path, env: dict[str, str]) -> Iterator[None]:
    """What the entry point changes in its process (the working folder, environment, ``sys.argv`` and
    ``sys.path``, SIGTERM's handler, Hydra's singletons, tuneflow's per-process caches) put back after it."""
    from hydra.core.global_hydra import GlobalHydra

    saved_env, saved_argv, saved_path = dict(os.environ), list(sys.argv), list(sys.path)
    saved_cwd, saved_term = os.getcwd(), signal.getsignal(signal.SIGTERM)
    os.environ.clear()
    os.environ.update({**tuneflow_env(), **env})
    os.chdir(project)
    GlobalHydra.instance().clear()
    clear_caches()
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        clear_caches()
        forget_project_modules(project)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv[:], sys.path[:] = saved_argv, saved_path
        signal.signal(signal.SIGTERM, saved_term)


def forget_project_modules(project: Path) -> None:
    """The project's own modules (a case's trainer): the next case's copy has its own."""
    import importlib

    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(project)):
            del sys.modules[name]
    importlib.invalidate_caches()


def clear_caches() -> None:
    """Connection pools and loaded studies tuneflow keeps per process: a case must not see the last one's."""
    from tuneflow.storage import study, urls

    urls.engine_for.cache_clear()
    study.job_storage.cache_clear()
    study.forget_job_studies()


#: Seconds an in-process case may run (a case takes ~0.5 s; far more on a loaded machine): a hang (a client retrying a dead server) fails the case instead of
#: stalling the suite.
CASE_TIMEOUT_S = 120


class CaseTimedOut(Exception):
    pass


def _time_out(signum: int, frame: Any) -> None:
    raise CaseTimedOut(f"the case ran past {CASE_TIMEOUT_S} s")


def run_in_process(project: Path, case: Case) -> Outcome:
    import traceback

    from tuneflow.cli.app import main

    stdout, stderr = io.StringIO(), io.StringIO()
    code: int = 0
    trace = ""
    with isolated_process_state(project, case.env), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        sys.argv = ["tuneflow", *case.args]
        previous = signal.signal(signal.SIGALRM, _time_out)
        signal.alarm(CASE_TIMEOUT_S)
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:  # noqa: BLE001 - a traceback is what the case must never show
            trace = traceback.format_exc()
            code = 1
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    return Outcome(code, stdout.getvalue(), stderr.getvalue() + trace, trace)


def assert_one_line(outcome: Outcome, case: Case, project: Project) -> None:
    """The promise for bad input: one line that names what to fix, the exit status, no password, no change."""
    output = outcome.stdout + outcome.stderr
    assert not outcome.traceback, outcome.traceback
    assert outcome.returncode == case.status, output
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith("tuneflow: error: "), lines[0]
    assert case.message in lines[0], lines[0]
    assert PASSWORD not in output, "a password is never echoed"
    after = fingerprint(project.path)
    assert after == project.before, {k: (project.before.get(k), after.get(k)) for k in set(after) ^ set(project.before)
                                     or {k for k in after if after[k] != project.before.get(k)}}


def check(project: Project, case: Case) -> None:
    outcome = project.run(case)
    if os.environ.get("TUNEFLOW_BAD_INPUT_TALLY"):
        tally(outcome, case, project)
    assert_one_line(outcome, case, project)


def tally(outcome: Outcome, case: Case, project: Project) -> None:
    """One line per case into $TUNEFLOW_BAD_INPUT_TALLY: how it ended (for the suite's before/after counts)."""
    lines = outcome.stderr.strip().splitlines()
    ending = ("traceback" if outcome.traceback or "Traceback (most recent call last)" in outcome.stderr
              else "handled" if outcome.returncode == case.status and len(lines) == 1 and lines[0].startswith("tuneflow: error: ")
              else "other")
    record = {"test": os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0], "case": " ".join(case.args), "ending": ending, "changed": fingerprint(project.path) != project.before,
              "leaked": PASSWORD in outcome.stdout + outcome.stderr, "status": outcome.returncode,
              "line": lines[-1][:300] if lines else ""}
    with open(os.environ["TUNEFLOW_BAD_INPUT_TALLY"], "a") as out:
        out.write(json.dumps(record) + "\n")


def spec_file(spec: Any) -> dict[str, str | bytes]:
    return {"spec.json": spec if isinstance(spec, (str, bytes)) else json.dumps(spec)}
