"""What every benchmark script shares: markdown tables, medians that tolerate runs that never got
there, and progress lines on stderr (stdout carries only the results, for run_all.py to paste)."""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

_STARTED = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """``align``: one letter per column, ``l`` or ``r`` (default: first column left, the rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def censored_median(values: Sequence[float]) -> float:
    """Median where ``inf`` means "not reached within the budget": it sorts last, so the median is
    finite as long as more than half of the runs got there, and ``inf`` otherwise."""
    if not values:
        return math.nan
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    low, high = ordered[middle - 1], ordered[middle]
    return math.inf if math.isinf(high) else (low + high) / 2


def fmt(value: float, digits: int = 3, censored_as: str = "not reached") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return censored_as
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"


def quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """Lower quartile, median and upper quartile."""
    if len(values) < 2:
        return (values[0],) * 3 if values else (math.nan,) * 3
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def load_default_study(name: str, root_dir: Any) -> Any:
    """Study ``name`` from the embedded default store under ``root_dir`` (the journal; an older project's
    optuna.db), opened as tuneflow opens it."""
    import optuna

    from tuneflow.storage.study import open_storage
    from tuneflow.storage.urls import default_storage_url

    return optuna.load_study(study_name=name, storage=open_storage(default_storage_url(root_dir)))
