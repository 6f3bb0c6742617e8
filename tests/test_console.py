"""What a user sees on the console of a small study, and what each trial's log file holds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import run_tuneflow

from tuneflow.console import Terminated, interrupt_behind

#: Numbers and MLflow run ids vary from run to run; the transcript compares everything else.
_NUMBER = re.compile(r"-?\d+(\.\d+)?(e[-+]?\d+)?")
_RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")

EXPECTED = """\
trial # running: step #, val_loss=#, #s
[#/#] trial # COMPLETE value=# in #s | best=# (##)
trial # running: step #, val_loss=#, #s
[#/#] trial # COMPLETE value=# in #s | best=# (##)
trial # running: step #, val_loss=#, #s
[#/#] trial # COMPLETE value=# in #s | best=# (##)
study 'console': # finished, # failed
best trial ##: val_loss=# (x=#, y=#)
MLflow parent run: <run>
results CSV: mlruns/studies/console/trials.csv"""


def transcript(stdout: str) -> str:
    """The console with numbers and run ids blanked out, and a trial's consecutive progress lines as one."""
    lines: list[str] = []
    for line in stdout.splitlines():
        line = _NUMBER.sub("#", _RUN_ID.sub("<run>", line))
        if not (lines and line == lines[-1] and "running:" in line):
            lines.append(line)
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["tuneflow", "basic"])
def test_the_console_tells_one_line_per_trial_with_progress_and_no_hydra_chatter(project: Path, launcher: str) -> None:
    # 6 epochs of 0.05 s with a progress line due every 0.1 s: each trial outlasts the interval.
    result = run_tuneflow(project, "+arch=quadratic", "-m", "hydra.sweeper.n_trials=3", "hydra/sweeper/pruner=none",
                          "hydra.sweeper.study_name=console", "params.epochs=6", "params.seconds_per_epoch=0.05",
                          "hydra.sweeper.progress_interval=0.1", "tracking.log_model=false",
                          f"hydra/launcher={launcher}")
    assert result.returncode == 0, result.output[-3000:]
    assert result.stderr == "", "no library start-up chatter"
    assert transcript(result.stdout) == EXPECTED, result.stdout
    finished = [line for line in result.stdout.splitlines() if " COMPLETE " in line]
    assert [line.split()[:3] for line in finished] == [[f"[{n}/3]", "trial", str(n - 1)] for n in (1, 2, 3)]
    running = [line for line in result.stdout.splitlines() if "running:" in line]
    assert {line.split()[1] for line in running} == {"0", "1", "2"}, "progress of every trial"

    # Each trial's log file holds its story: the overrides Hydra's launch line showed, every report, the end.
    (log,) = project.glob("multirun/*/*/trial_1/tuneflow.log")
    messages = [line.split(" - ", 1)[1] for line in log.read_text().splitlines()]
    assert messages[0].startswith("trial 1 of study 'console': +arch=quadratic ") and "params.x=" in messages[0]
    assert [m.split(":")[0] for m in messages[1:7]] == [f"step {n}" for n in range(1, 7)]
    assert messages[7].startswith("COMPLETE value=") and len(messages) == 8


def test_help_lists_the_commands_multirun_the_architectures_and_the_common_overrides(project: Path) -> None:
    from tuneflow.cli.app import SUBCOMMANDS

    (project / "conf" / "arch").mkdir(parents=True)
    (project / "conf" / "arch" / "my_net.yaml").write_text("# @package _global_\narch: {name: my_net}\n")
    result = run_tuneflow(project, "--help")
    assert result.returncode == 0, result.output
    text = result.stdout
    for command in SUBCOMMANDS:
        assert f"\n  {command} " in text, f"command {command} listed"
    assert "-m (--multirun)" in text
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1] for line in text.splitlines() if ":" in line}
    assert lines["of tuneflow"].strip().split(", ") == ["cnn", "lightgbm", "lstm_attention", "mlp", "quadratic", "twin_quadratic"]
    assert lines["of this project"].strip() == "my_net"
    for override in ("hydra.sweeper.n_trials=", "hydra/sweeper/sampler=", "hydra/sweeper/pruner=",
                     "hydra.sweeper.params.", "hydra.sweeper.study_name=", "mode=fast", "hydra/launcher=joblib"):
        assert override in text
    assert "== Configuration groups ==" in text and "root_dir: mlruns" in text, "Hydra's own sections stay"
    assert sorted(p.name for p in project.iterdir()) == ["conf"], "help writes nothing"


def test_a_run_without_an_architecture_is_one_line_and_leaves_no_outputs_folder(project: Path) -> None:
    result = run_tuneflow(project)
    assert result.returncode == 2
    assert result.stderr.startswith("tuneflow: error: no architecture chosen: add +arch=NAME")
    assert list(project.iterdir()) == [], "no outputs/ left behind"


def _clean_up_that_fails_during(interrupt: KeyboardInterrupt) -> None:
    """What a strategy's clean-up did once on Ctrl-C: an OmegaConf node half-copied by the interrupt fails."""
    from omegaconf.errors import ConfigAttributeError

    try:
        raise interrupt
    except KeyboardInterrupt:
        raise ConfigAttributeError("'NoneType' object has no attribute '_invalidate_flags_cache'") from None


@pytest.mark.parametrize(("interrupt", "status", "word"), [(KeyboardInterrupt(), 130, "interrupted"),
                                                           (Terminated(), 143, "terminated")])
def test_an_error_raised_while_stopping_on_ctrl_c_ends_the_run_as_interrupted_not_as_bad_input(
        interrupt: KeyboardInterrupt, status: int, word: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tuneflow.cli.app import main

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", ["tuneflow", "+arch=quadratic"])
        patch.setattr("tuneflow.cli.app.check_project_configs", lambda: _clean_up_that_fails_during(interrupt))
        with pytest.raises(SystemExit) as ended:
            main()
    assert ended.value.code == status
    stderr = capsys.readouterr().err
    assert stderr.startswith(f"tuneflow: {word};") and "error" not in stderr


def test_a_fixable_error_without_an_interrupt_behind_it_is_still_one_error_line() -> None:
    from omegaconf.errors import ConfigAttributeError

    assert interrupt_behind(ConfigAttributeError("no such key")) is None
    try:
        _clean_up_that_fails_during(KeyboardInterrupt())
    except ConfigAttributeError as error:
        assert isinstance(interrupt_behind(error), KeyboardInterrupt)


class _StoreClosedByTheInterrupt:
    """An MLflow client whose store call is cut by a Ctrl-C and then fails as SQLAlchemy does: the
    interrupt is only the context of the store's own error ("This transaction is closed")."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def log_artifact(self, run_id: str, path: str) -> None:
        self.calls.append("log_artifact")

    def set_terminated(self, run_id: str, status: str) -> None:
        self.calls.append("set_terminated")
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("This transaction is closed") from None

    def get_run(self, run_id: str) -> Any:
        self.calls.append("get_run")
        raise RuntimeError("This transaction is closed")


def test_ctrl_c_while_the_study_ends_its_parent_run_ends_as_interrupted_after_every_clean_up_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    from tuneflow.sweeper import sweep
    from tuneflow.sweeper.opening import OpenStudy

    monkeypatch.setattr(sweep, "summarise_to_parent", lambda *args: None)
    client = _StoreClosedByTheInterrupt()
    opened = OpenStudy(study=optuna.create_study(), storage=None, client=client, parent_run_id="parent")
    with pytest.raises(KeyboardInterrupt):
        sweep.finish_study(opened, tmp_path / "trials.csv", "FINISHED")
    # The steps after the interrupted one still ran (nothing left RUNNING that could be closed).
    assert client.calls == ["log_artifact", "set_terminated", "get_run"]
    assert (tmp_path / "trials.csv").exists()


def test_a_store_failure_while_the_study_ends_without_an_interrupt_is_still_its_one_line(tmp_path: Path,
                                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    from tuneflow.sweeper import sweep
    from tuneflow.sweeper.opening import OpenStudy

    monkeypatch.setattr(sweep, "summarise_to_parent", lambda *args: None)
    client = _StoreClosedByTheInterrupt()
    client.set_terminated = lambda run_id, status: (_ for _ in ()).throw(RuntimeError("disk full"))  # type: ignore[method-assign]
    opened = OpenStudy(study=optuna.create_study(), storage=None, client=client, parent_run_id="parent")
    assert sweep.finish_study(opened, tmp_path / "trials.csv", "FINISHED") == "cannot end the parent run: disk full"
