"""What a stage hands the next: its finalists, as a YAML file a user can read and edit
(``<root_dir>/studies/<study>/<stage>.yaml``).

The file is the only link between two stages: the next stage (or a later run of the strategy) reads it
back, so an edit (a finalist removed, a value changed) is what the next stage starts from, and a stage can
start from a file written by hand (``strategy.inputs=path``). A stage's file is written once the stage
has finished (atomically): its presence with ``status: done`` is what tells a resumed strategy to skip it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tuneflow.errors import ConfigError


@dataclass
class Handoff:
    #: The stage that wrote it ("start" before the first).
    stage: str
    #: Best first: {"params": {...}, "value": float, "study": str, "trial": int, and "zone", "scheme" where known}.
    finalists: list[dict[str, Any]] = field(default_factory=list)
    #: Names searched by this and earlier stages (``params: rest`` searches the others).
    searched: list[str] = field(default_factory=list)
    #: The strategy's whole search space, in Hydra's sweep syntax (zones narrow it per zone).
    space: dict[str, str] = field(default_factory=dict)
    #: Names settled by an earlier stage's named group (``params: [lr, ...]``): ``params: rest`` searches
    #: the others (a screen over ``all`` settles nothing).
    groups: list[str] = field(default_factory=list)
    #: A zones stage's zones: number, study, the input trials it holds, its bounds, its best.
    zones: list[dict[str, Any]] = field(default_factory=list)
    #: One line on what the stage concluded (a skipped stage: why; a repeat stage: the verdict).
    note: str = ""
    #: The overrides the finalists' values were scored with (e.g. [mode=fast]); null = unknown (a file
    #: written by hand). A next stage with the same overrides takes those values as known instead of
    #: training the finalists again.
    overrides: list[str] | None = None
    status: str = "done"

    @property
    def best(self) -> dict[str, Any] | None:
        return self.finalists[0] if self.finalists else None


def stage_file(folder: Path, stage: str) -> Path:
    return folder / f"{stage}.yaml"


def write(path: Path, handoff: Handoff, header: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(_plain(asdict(handoff)), sort_keys=False, allow_unicode=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(f"# {line}\n" for line in header.splitlines()) + body)
    tmp.replace(path)
    return path


def read(path: Path) -> Handoff:
    """A finalists file, checked enough that the next stage's errors name the file, not a key deep inside."""
    if not path.is_file():
        raise ConfigError(f"strategy: no finalists file {path}")
    try:
        node = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        first = str(error).strip().splitlines()[0]
        raise ConfigError(f"strategy: {path} is not valid YAML: {first}") from None
    if not isinstance(node, dict):
        raise ConfigError(f"strategy: {path} must hold a mapping with finalists")
    known = set(Handoff.__dataclass_fields__)
    unknown = [key for key in node if key not in known]
    if unknown:
        raise ConfigError(f"strategy: {path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    handoff = Handoff(**{"stage": path.stem, **node})
    for index, finalist in enumerate(handoff.finalists):
        if not isinstance(finalist, dict) or not isinstance(finalist.get("params"), dict):
            raise ConfigError(f"strategy: {path}: finalists[{index}] needs params (a mapping of name: value)")
    return handoff


def _plain(value: Any) -> Any:
    """numpy scalars and tuples as YAML's plain types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value
