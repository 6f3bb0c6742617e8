"""Writes ``daily_sales.csv``: three years of a (made-up) bakery's daily bread sales, generated offline
with a fixed seed so the file in the repository can be rebuilt byte for byte.

Loaves sold depend on the weekday (weekends busier), the season (more bread in winter), the day's
temperature (fewer loaves on hot days), promotions and holidays, plus noise: a series with structure a
forecaster can learn and date ranges that differ, like a real shop's.

    python examples/bakery/make_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

START, END = "2022-01-01", "2024-12-31"


def make_sales(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range(START, END, freq="D")
    day_of_year = dates.day_of_year.to_numpy()
    season = np.cos(2 * np.pi * (day_of_year - 15) / 365.25)  # +1 mid-January, -1 mid-July
    temperature = 12.0 - 9.0 * season + rng.normal(0.0, 3.0, len(dates))
    weekday_effect = np.array([0.95, 0.9, 0.95, 1.0, 1.1, 1.35, 1.25])[dates.day_of_week]
    promo = (rng.random(len(dates)) < 0.08).astype(int)
    holiday = dates.strftime("%m-%d").isin(["01-01", "05-01", "07-04", "12-24", "12-25", "12-31"]).astype(int)
    level = 180.0 + 0.03 * np.arange(len(dates))  # slow growth of the shop
    expected = level * weekday_effect * (1.0 + 0.12 * season) * (1.0 - 0.006 * (temperature - 12.0))
    expected *= 1.0 + 0.25 * promo + 0.4 * holiday
    loaves = np.maximum(0, np.round(expected + rng.normal(0.0, 12.0, len(dates))))
    return pd.DataFrame({
        "date": dates.strftime("%Y-%m-%d"),
        "loaves": loaves.astype(int),
        "temperature": np.round(temperature, 1),
        "promo": promo,
        "holiday": holiday,
    })


if __name__ == "__main__":
    target = Path(__file__).with_name("daily_sales.csv")
    make_sales().to_csv(target, index=False)
    print(f"wrote {target}")
