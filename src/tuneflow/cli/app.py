"""``python -m tuneflow`` / ``tuneflow``: the Hydra application.

``python -m tuneflow +arch=mlp`` trains once with the architecture's default params;
``python -m tuneflow +arch=mlp -m`` tunes it with the tuneflow sweeper. Errors a user can fix are
printed as one line (``tuneflow: error: ...``) with exit status 2; nothing is created before them.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from tuneflow.console import (
    EXIT_USAGE,
    exit_interrupted,
    interrupt_behind,
    one_line_error,
    quiet_library_warnings,
    terminate_like_interrupt,
)

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
    """Hydra's task function: one job = one training run of the chosen architecture.

    In a sweep the sweeper runs it as a trial (``tuneflow.current_trial()`` is set) and it returns the
    run's metrics; on its own it is a plain training run with its own MLflow run.
    """
    from tuneflow.errors import ConfigError, TuneflowError
    from tuneflow.storage.urls import check_root_dir, check_tracking
    from tuneflow.tracking.runs import resolve_tracking_uri, tracking_uri_source
    from tuneflow.trial import api, arch_task

    if api.current_trial() is not None:
        return arch_task.run(cfg)
    # A plain run: errors end the process here, as one line (Hydra would add its own report).
    try:
        if "arch" not in cfg:
            raise ConfigError(
                f"no architecture chosen: add +arch=NAME, one of {', '.join(arch_task.available_archs())}"
            )
        # What the sweeper checks before a study, checked before the run's MLflow records exist.
        arch_task.check_job(cfg)
        check_root_dir(str(cfg.root_dir))
        check_tracking(resolve_tracking_uri(cfg.tracking.uri, str(cfg.root_dir)), tracking_uri_source(cfg.tracking.uri))
        value, run_id, _ = arch_task.run_single(cfg)
    except TuneflowError as error:
        discard_run_folder()
        print(f"tuneflow: error: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    print(f"trained {cfg.arch.name}: {cfg.arch.objective}={value:.6g}; MLflow run {run_id}")
    return value


def discard_run_folder() -> None:
    """Remove the folder Hydra made for a plain run (``outputs/<day>/<time>/``) that stopped at bad input:
    an error creates nothing. Only a folder holding nothing but Hydra's config copies and an empty log
    goes (a run in the same second may have left more), then its parents while they are empty."""
    from hydra.core.hydra_config import HydraConfig

    folder = Path(HydraConfig.get().runtime.output_dir).resolve()
    project = Path.cwd().resolve()
    files = [path for path in folder.rglob("*") if path.is_file()]
    ours = all(path.parent.name == ".hydra" or (path.suffix == ".log" and path.stat().st_size == 0)
               for path in files)
    if not ours or project not in folder.parents:
        return
    shutil.rmtree(folder, ignore_errors=True)
    for parent in folder.parents:
        if parent == project:
            break
        try:
            parent.rmdir()  # only if empty: earlier runs stay as they were
        except OSError:
            break


def _check_job(cfg: DictConfig) -> None:
    from tuneflow.trial import arch_task

    arch_task.check_job(cfg)


def _task(cfg: DictConfig) -> Any:
    return run_task(cfg)


def architectures(where: str) -> str:
    """``${tuneflow.archs:package}`` / ``${tuneflow.archs:project}`` in ``tuneflow --help``."""
    from tuneflow.trial import arch_task

    names = arch_task.available_archs(where)
    if names:
        return ", ".join(names)
    return "none yet (add conf/arch/NAME.yaml here)" if where == "project" else "none"


OmegaConf.register_new_resolver("tuneflow.archs", architectures, replace=True)

# The sweeper runs this on a job config at the corners of the search space before it creates anything.
_task.tuneflow_check = _check_job  # type: ignore[attr-defined]
_hydra_main = hydra.main(version_base="1.3", config_path="pkg://tuneflow.conf", config_name="config")(_task)


def flags_first(argv: list[str]) -> list[str]:
    """``+arch=mlp -m n=1`` -> ``-m +arch=mlp n=1``: argparse takes one run of positional overrides
    only, and users write ``-m`` anywhere."""
    flags = [a for a in argv if a in ("-m", "--multirun")]
    return flags + [a for a in argv if a not in ("-m", "--multirun")]


def backend_arguments(argv: list[str]) -> list[str]:
    """Refuse passwords on the command line (Hydra would save them); expand the storage shorthand."""
    from tuneflow.storage.urls import (
        expand_storage_shorthand,
        refuse_passwords_in_arguments,
    )

    refuse_passwords_in_arguments(argv)
    return expand_storage_shorthand(argv)


#: ``tuneflow NAME ...`` runs ``tuneflow.NAME.main(argv)``; anything else is the Hydra app (an override
#: never is one of these words).
SUBCOMMANDS = {
    "report": "tuneflow.analysis.report",
    "repeat": "tuneflow.analysis.repeat",
    "ui": "tuneflow.cli.ui",
    "spec": "tuneflow.cli.spec",
    "fidelity": "tuneflow.analysis.fidelity",
}


def project_on_path() -> None:
    """The project folder (where the command runs) is importable, as ``python -m`` makes it: a
    ``conf/arch/NAME.yaml`` names its trainer as ``my_model.train`` and the ``tuneflow`` script finds it
    too, and so do the worker processes a parallel launcher starts."""
    project = os.getcwd()
    if project not in sys.path:
        sys.path.insert(0, project)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if project not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([project, *paths])


def check_project_configs(folder: str = "conf") -> None:
    """The project's own config files are UTF-8 (as YAML is read): Hydra would stop with a bare
    UnicodeDecodeError that names no file."""
    from pathlib import Path

    from tuneflow.errors import ConfigError

    for path in sorted(Path(folder).rglob("*.yaml")) if Path(folder).is_dir() else []:
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError(
                f"{path} is not UTF-8 text (byte {error.start}: {error.reason}); save it as UTF-8"
            ) from None
        except OSError:
            continue  # Hydra says what is wrong with a file it cannot read


def main() -> None:
    terminate_like_interrupt()
    project_on_path()
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        import importlib

        sys.exit(importlib.import_module(SUBCOMMANDS[sys.argv[1]]).main(sys.argv[2:]))
    quiet_library_warnings()
    # Let errors reach us instead of Hydra's multi-line report; we print one line per fixable error.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        check_project_configs()
        sys.argv = [sys.argv[0], *flags_first(quote_sweeper_params(backend_arguments(sys.argv[1:])))]
        _hydra_main()
    except SystemExit:
        raise
    except KeyboardInterrupt as interrupt:
        exit_interrupted(interrupt)
    except BaseException as error:  # noqa: BLE001
        interrupted = interrupt_behind(error)
        if interrupted is not None:
            exit_interrupted(interrupted)
        message = one_line_error(error)
        if message is None:
            raise
        print(f"tuneflow: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
