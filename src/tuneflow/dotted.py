"""A project's own code named in a config as ``module.function`` (a trainer, a data loader)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from tuneflow.errors import ConfigError


def import_function(path: str, what: str) -> Callable[..., Any]:
    """``my_model.train`` -> the function; one line naming ``what`` (``arch.trainer``) and the real
    ImportError when it cannot be imported. The project folder is importable (``tuneflow.cli.app``)."""
    module_name, _, attribute = str(path).rpartition(".")
    if not isinstance(path, str) or not module_name:
        raise ConfigError(f"{what} is {path!r}; name a function as module.function (my_model.train)")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as error:  # noqa: BLE001 - a module may fail to import in any way (syntax, its own raise, sys.exit)
        detail = f"sys.exit({error.code!r})" if isinstance(error, SystemExit) else f"{type(error).__name__}: {error}"
        raise ConfigError(f"{what} {path!r} cannot be imported: {detail.splitlines()[0] if detail else ''}") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ConfigError(f"{what} {path!r}: module {module_name} has no function {attribute!r}")
    return function  # type: ignore[no-any-return]
