"""``python -m tuneflow`` / ``tuneflow``: the Hydra application.

``python -m tuneflow +arch=mlp`` trains once with the architecture's default params;
``python -m tuneflow +arch=mlp -m`` tunes it with the tuneflow sweeper. Errors a user can fix are
printed as one line (``tuneflow: error: ...``) with exit status 2; nothing is created before them.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

EXIT_USAGE = 2

# `hydra.sweeper.params.lr=tag(log, interval(1e-4, 1e-1))` is a sweep over Hydra's own config, which
# Hydra refuses; tuneflow reads it as the string it is meant to be.
_SWEEPER_PARAM = re.compile(r"^(\+{0,2}hydra\.sweeper\.params\.[^=]+)=(.+)$")


def quote_sweeper_params(argv: list[str]) -> list[str]:
    """Quote sweeps given as ``hydra.sweeper.params.NAME=...`` and let them add new names (``++``):
    whether NAME is a parameter of the architecture is checked by the sweeper, with a clear message."""
    quoted = []
    for argument in argv:
        match = _SWEEPER_PARAM.match(argument)
        if match:
            key, value = match.group(1).lstrip("+"), match.group(2)
            if value[:1] not in ("'", '"'):
                value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
            argument = f"++{key}={value}"
        quoted.append(argument)
    return quoted


def run_task(cfg: DictConfig) -> Any:
    """Hydra's task function: one job = one training run (a study's trial under the tuneflow sweeper)."""
    from hydra.core.hydra_config import HydraConfig

    from tuneflow.errors import ConfigError, TuneflowError
    from tuneflow.study import study_settings
    from tuneflow.trial_runner import run_single, run_trial

    if cfg.trial.number is None:
        # A plain run: errors end the process here, as one line (Hydra would add its own report).
        try:
            if "arch" not in cfg:
                raise ConfigError(f"no architecture chosen: add +arch=NAME, one of {', '.join(available_archs())}")
            outcome = run_single(cfg)
        except TuneflowError as error:
            print(f"tuneflow: error: {error}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        print(f"trained {cfg.arch.name}: {cfg.arch.objective}={outcome.value:.6g}; MLflow run {outcome.run_id}")
        return outcome
    sweeper = OmegaConf.to_container(HydraConfig.get().sweeper, resolve=True)
    return run_trial(cfg, study_settings(sweeper, cfg), int(cfg.trial.number))  # type: ignore[arg-type]


def available_archs() -> list[str]:
    from importlib.resources import files

    return sorted(p.name.removesuffix(".yaml") for p in files("tuneflow").joinpath("conf/arch").iterdir()
                  if p.name.endswith(".yaml"))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> Any:
    return run_task(cfg)


def flags_first(argv: list[str]) -> list[str]:
    """``+arch=mlp -m n=1`` -> ``-m +arch=mlp n=1``: argparse takes one run of positional overrides
    only, and users write ``-m`` anywhere."""
    flags = [a for a in argv if a in ("-m", "--multirun")]
    return flags + [a for a in argv if a not in ("-m", "--multirun")]


def quiet_library_warnings() -> None:
    """Warnings about choices tuneflow made on purpose (heartbeats with ask/tell, pickled torch
    models for 0.05 s saves instead of 3 s exports) say nothing a user can act on."""
    import warnings

    warnings.filterwarnings("ignore", message=".*heartbeat.*", category=Warning)
    warnings.filterwarnings("ignore", message=".*fail_stale_trials.*", category=Warning)
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage.*", category=UserWarning)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    # With a tracking server MLflow prints two "View run" links per trial, and fetches the run to do so.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def backend_arguments(argv: list[str]) -> list[str]:
    """Refuse passwords on the command line (Hydra would save them); expand the storage shorthand."""
    from tuneflow.backends import expand_storage_shorthand, refuse_passwords_in_arguments

    refuse_passwords_in_arguments(argv)
    return expand_storage_shorthand(argv)


#: ``tuneflow NAME ...`` runs ``tuneflow.NAME.main(argv)``; anything else is the Hydra app (an override
#: never is one of these words).
SUBCOMMANDS = ("report", "repeat", "ui", "spec", "fidelity")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is: a scheduler's pre-emption, ``docker stop`` or ``kill``
    then ends the study the way Ctrl-C does (the running trial FAIL, its MLflow run and the parent
    run KILLED, the CSV written) instead of leaving them RUNNING until a heartbeat goes stale."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def main() -> None:
    signal.signal(signal.SIGTERM, _raise_terminated)
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        import importlib

        sys.exit(importlib.import_module(f"tuneflow.{sys.argv[1]}").main(sys.argv[2:]))
    quiet_library_warnings()
    # Let errors reach us instead of Hydra's multi-line report; we print one line per fixable error.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        sys.argv = [sys.argv[0], *flags_first(quote_sweeper_params(backend_arguments(sys.argv[1:])))]
        _hydra_main()
    except SystemExit:
        raise
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, Terminated)
        print(f"tuneflow: {'terminated' if terminated else 'interrupted'}; finished trials are kept, "
              "the running one is marked failed", file=sys.stderr)
        sys.exit(128 + (signal.SIGTERM if terminated else signal.SIGINT))
    except BaseException as error:  # noqa: BLE001
        message = one_line_error(error)
        if message is None:
            raise
        print(f"tuneflow: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def one_line_error(error: BaseException) -> str | None:
    """The one line that tells the user what to fix, or None for a bug (the traceback is shown)."""
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    from tuneflow.errors import TuneflowError

    if isinstance(error, TuneflowError):
        return str(error)
    if isinstance(error, MissingConfigException):
        missing = error.missing_cfg_file or ""
        group, _, option = str(missing).rpartition("/")
        options = ", ".join(error.options or [])
        if group and options:
            return f"unknown {group} {option!r}: choose one of {options}"
        return str(error).strip().splitlines()[0]
    if isinstance(error, (HydraException, OmegaConfBaseException)):
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        cause = error.__cause__
        if cause is not None and str(cause).strip():
            lines.append(str(cause).strip().splitlines()[0])
        return " ".join(lines[:3]) if lines else type(error).__name__
    return None
