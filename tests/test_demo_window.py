"""`make demo`'s backfill must give the nightly run enough history to train a model."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from jobs.config import Config
from jobs.train import MIN_HISTORY_DAYS, ensemble_config

ROOT = Path(__file__).resolve().parents[1]


def _var(text: str, name: str) -> dt.date:
    return dt.date.fromisoformat(re.search(rf"^{name}\s*\?=\s*(\S+)", text, re.M).group(1))


def test_demo_history_covers_the_training_window():
    text = (ROOT / "Makefile").read_text()
    start, night = _var(text, "DEMO_FROM"), _var(text, "DEMO_DATE")
    assert _var(text, "DEMO_PREV") == night - dt.timedelta(days=1)
    ens = ensemble_config(Config(model_profile="quick"))  # the demo's profile
    need = MIN_HISTORY_DAYS + ens.horizon * (ens.n_cutoffs + ens.validation_origins)
    have = (night - start).days + 1  # the backfilled days and the night itself
    assert have >= need, f"make demo: {have} days of features, training needs {need}"
    begin = _var(text, "DEMO_START")
    days = int(re.search(r"^DEMO_DAYS\s*\?=\s*(\d+)", text, re.M).group(1))
    assert begin <= start and _var(text, "DEMO_NEXT") < begin + dt.timedelta(days=days)
