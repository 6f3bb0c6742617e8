"""``tuneflow report STUDY`` for a strategy (its stages' finalists files under ``<root_dir>/studies/<study>/``):
each stage's best and note, and each zones stage's zones (which input trials, their bounds, their best),
also as ``report/zones.csv``, and its parallel-coordinates plot coloured by zone (``report/zones_<stage>.html``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneflow.strategy import handoff as files
from tuneflow.strategy.handoff import Handoff
from tuneflow.strategy.zone_plot import StudyLoader, write_zone_plots


def stage_files(folder: Path) -> list[Path]:
    """The finalists files in ``folder``, oldest first (the order the stages ran)."""
    found = []
    for path in folder.glob("*.yaml") if folder.is_dir() else []:
        try:
            files.read(path)
        except Exception:  # noqa: BLE001 - any other YAML there is not a stage's file
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.stat().st_mtime)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def zone_rows(handoff: Handoff) -> list[dict[str, Any]]:
    rows = []
    for zone in handoff.zones:
        best = zone.get("best") or {}
        rows.append({
            "stage": handoff.stage,
            "zone": zone["zone"],
            "study": zone["study"],
            "input_trials": " ".join(f"{i.get('study')}#{i.get('trial')}" for i in zone.get("inputs", [])),
            "bounds": "; ".join(f"{k} in {v}" for k, v in zone.get("bounds", {}).items()),
            "best_value": best.get("value", ""),
            "best_params": _params(best.get("params", {})),
        })
    return rows


def report_lines(paths: list[Path]) -> list[str]:
    lines = []
    for path in paths:
        handoff = files.read(path)
        best = handoff.best
        head = f"stage {handoff.stage} ({handoff.status}): {len(handoff.finalists)} finalist(s)"
        if best is not None:
            shown = best.get("repeat_mean", best.get("value"))
            head += f", best {shown:.6g} ({_params(best['params'])})" if isinstance(shown, float) else ""
        lines.append(head + (f"; {handoff.note}" if handoff.note else ""))
        for row in zone_rows(handoff):
            value = row["best_value"]
            best_text = f"best {value:.6g} ({row['best_params']})" if isinstance(value, float) else "no trial completed"
            lines.append(f"  zone {row['zone']} ({row['study']}): inputs {row['input_trials']}; "
                         f"bounds {row['bounds']}; {best_text}")
    return lines


def print_report(folder: Path, out_dir: Path, load: StudyLoader | None = None) -> int:
    """The strategy's stages and zones, printed; zones.csv and each zones stage's parallel-coordinates plot
    (``zones_<stage>.html``, coloured by zone; ``load`` reads a zone's study for its trials) written to
    ``out_dir``."""
    paths = stage_files(folder)
    print(f"strategy in {folder}: {len(paths)} stage(s) finished or handed on")
    print("\n".join(report_lines(paths)))
    written = write_zones_csv(paths, out_dir)
    if written is not None:
        print(f"zones: {written}")
    for plot in write_zone_plots(paths, out_dir, load):
        print(f"zones, parallel coordinates coloured by zone: {plot}")
    print("each stage's study: tuneflow report <study>/<stage> (a zone: <study>/<stage>/zone-<k>)")
    return 0


def write_zones_csv(paths: list[Path], out_dir: Path) -> Path | None:
    from tuneflow.tracking.trials_csv import write_table

    rows = [row for path in paths for row in zone_rows(files.read(path))]
    return write_table(rows, out_dir / "zones.csv", None) if rows else None
