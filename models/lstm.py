"""A global LSTM forecaster (PyTorch, CPU): one small network for every series.

Inputs of a window cut at day t (the cutoff) for one series, with L = ``context`` days:

* per context day t-L+1..t: the demand divided by the window's scale (0 where the day has no
  row), a 0/1 "observed" flag, the day of week (one-hot) and the known covariates of that day;
  days before the series' first row are padded as unobserved;
* per target day t+1..t+H: the day of week (one-hot) and the known covariates, flattened
  (the promotion and festival calendar is known in advance);
* the log of the scale, so that the network knows the volume it works at.

``scale`` = mean of the observed demand in the context window, floored at ``min_scale`` (1
unit a day by default: below it a series is modelled in units). The network reads the
encoder's last hidden state with the target-day features through a two-layer head that
predicts, for every target day at once (multi-output, no recursion), a mean and the quantiles
of ``train_quantiles``, all in scaled units and multiplied back by the scale:

* ``mean = softplus(a)``, trained with squared error (``mean_loss="mse"``) or the Poisson
  deviance (``"poisson"``);
* ``q_1 = softplus(b_1)``, ``q_k = q_(k-1) + softplus(b_k)``: non-negative and monotone
  across levels by construction, trained with the pinball loss of each level.

The loss is the mean over the observed target days of the mean's loss plus the pinball losses.
Other levels than ``train_quantiles`` are interpolated linearly between the two nearest trained
levels (the default grid covers 0.1..0.99 and holds ``QUANTILES`` exactly).

Training windows are a seeded random sample (``max_windows``) of (series, cutoff) pairs whose
targets lie before the validation tail, the last ``val_days`` days of the frame (default
max(14, horizon)); validation windows are the cutoffs whose targets fall in that tail
(targets past the frame are masked). Training stops when the validation loss has not
improved for ``patience`` epochs and the best epoch's weights are kept. The kept network has
not learnt from the tail's targets, but predictions read the most recent ``context`` days,
tail included.

Known covariates: by default those of ``KNOWN_COVARIATES`` present in the training frame
(numbers or booleans; missing values are 0). At prediction they come from ``future``
(store_id, sku_id, date, covariates) for the target days; a series x day or a column that
``future`` lacks gets the neutral value 0 (no promotion, no festival), and a warning is logged.

Determinism: ``fit`` seeds numpy and torch (``seed``, else ``cfg.seed``) inside a forked torch
RNG, so the global RNG state is left as it was, and runs on ``num_threads`` CPU threads (2),
restoring torch's thread count afterwards. Same data and seed give the same forecasts.

Memory: ``fit`` lays the frame out as a dense series x day matrix; on the full store x SKU
universe, fit on a sample of series (the windows are sampled anyway) or a recent window. The
fitted model keeps only the last ``context`` days of that matrix (all ``predict`` reads), so
it stays small when pickled.

``forecast_from(history, horizon, quantiles, future)``: the trained network, unchanged, on a
new panel laid out from ``history`` (a training frame with the covariates of ``fit``; a
missing one is an error): days 1..horizon after ``history``'s last date, for every series in
it (the network is global, so a series never seen in ``fit`` is fine), ``future`` as in
``predict``. Like ``predict`` it reads the last ``context`` days, so
``forecast_from(train)`` equals ``predict()`` after ``fit(train)``. The model is not mutated.
A cutoff before the fit's (the network learnt from later data: a leak in a backtest) or more
than ``max_gap_days`` after it (a stale network) is allowed, with a warning in the log.
Pickles with the standard ``pickle`` module (the network as a torch module).
"""
from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd
import torch
from torch import nn

from models.protocol import (
    KEY,
    QUANTILES,
    ModelConfig,
    check_train,
    forecast_frame,
    quantile_columns,
)

__all__ = ["LSTMForecaster", "KNOWN_COVARIATES", "TRAIN_QUANTILES"]

log = logging.getLogger(__name__)

#: Covariates known in advance for the target days, used when present in the training frame.
KNOWN_COVARIATES: tuple[str, ...] = ("on_promotion", "discount_pct", "festival_intensity")
#: Quantile levels the heads learn by default: ``QUANTILES`` and a few below them.
TRAIN_QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.8, 0.9, 0.95, 0.99)

_DOW = 7
_PREDICT_BATCH = 4096


@dataclass(frozen=True)
class _Panel:
    keys: pd.DataFrame  # n rows: store_id, sku_id (sorted)
    start: pd.Timestamp
    values: np.ndarray  # (n, T), NaN where a series has no row
    covariates: np.ndarray  # (n, T, C), 0 where unknown

    @property
    def cutoff(self) -> pd.Timestamp:
        return self.start + pd.Timedelta(days=self.values.shape[1] - 1)

    def tail(self, days: int) -> _Panel:
        """The last ``days`` days (the same cutoff and series)."""
        skip = max(self.values.shape[1] - days, 0)
        return _Panel(keys=self.keys, start=self.start + pd.Timedelta(days=skip),
                      values=self.values[:, skip:].copy(),
                      covariates=self.covariates[:, skip:].copy())


def _panel(df: pd.DataFrame, covariates: Sequence[str], days: int | None = None) -> _Panel:
    """Series x day layout of a checked frame; with ``days``, only the last ``days`` days up
    to the frame's last date, still with a row for every series of the frame."""
    groups = df.groupby(list(KEY), sort=True)
    sid = groups.ngroup().to_numpy()
    keys = groups.size().index.to_frame(index=False)[list(KEY)]
    start = pd.Timestamp(df["date"].min())
    if days is not None:
        start = max(start, pd.Timestamp(df["date"].max()) - pd.Timedelta(days=days - 1))
    day = ((df["date"] - start) // pd.Timedelta(days=1)).to_numpy(dtype="int64")
    inside = day >= 0
    sid, day = sid[inside], day[inside]
    n, span = len(keys), int(day.max()) + 1
    values = np.full((n, span), np.nan)
    values[sid, day] = df["y"].to_numpy(dtype="float64")[inside]
    cov = np.zeros((n, span, len(covariates)), dtype="float32")
    for j, col in enumerate(covariates):
        cov[sid, day, j] = _numeric(df[col])[inside]
    return _Panel(keys=keys, start=start, values=values, covariates=cov)


def _numeric(col: pd.Series) -> np.ndarray:
    out = pd.to_numeric(col.astype("float64") if col.dtype == bool else col, errors="coerce")
    return np.nan_to_num(out.to_numpy(dtype="float64"), nan=0.0, posinf=0.0, neginf=0.0)


class _Net(nn.Module):
    """LSTM encoder over the context, MLP head over (last state, target-day features)."""

    def __init__(self, n_in: int, n_future: int, hidden: int, horizon: int,
                 n_quantiles: int) -> None:
        super().__init__()
        self.horizon, self.n_quantiles = horizon, n_quantiles
        self.encoder = nn.LSTM(n_in, hidden, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(hidden + n_future + 1, 2 * hidden), nn.ReLU(),
            nn.Linear(2 * hidden, horizon * (1 + n_quantiles)))

    def forward(self, past: torch.Tensor, future: torch.Tensor,
                log_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, (h, _) = self.encoder(past)
        raw = self.head(torch.cat([h[-1], future, log_scale[:, None]], dim=1))
        raw = raw.view(-1, self.horizon, 1 + self.n_quantiles)
        mean = nn.functional.softplus(raw[:, :, 0])
        quantiles = torch.cumsum(nn.functional.softplus(raw[:, :, 1:]), dim=2)
        return mean, quantiles


@dataclass
class _Windows:
    past: torch.Tensor  # (B, L, n_in)
    future: torch.Tensor  # (B, H * n_fut)
    log_scale: torch.Tensor  # (B,)
    target: torch.Tensor  # (B, H) scaled, 0 where masked
    mask: torch.Tensor  # (B, H) 1 where the target day is observed

    def __len__(self) -> int:
        return int(self.past.shape[0])

    def take(self, idx: torch.Tensor) -> _Windows:
        return _Windows(self.past[idx], self.future[idx], self.log_scale[idx],
                        self.target[idx], self.mask[idx])


@contextmanager
def _torch_session(seed: int, threads: int) -> Iterator[None]:
    """Seeded, thread-limited torch work that leaves the global RNG and thread count alone."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(before)


class LSTMForecaster:
    """Global LSTM with a direct multi-horizon head; see the module docstring."""

    name = "lstm"

    def __init__(self, context: int = 28, horizon: int = 7, hidden: int = 32,
                 max_windows: int = 20_000, epochs: int = 30, patience: int = 5,
                 batch_size: int = 256, learning_rate: float = 5e-3,
                 val_days: int | None = None, min_context: int = 7,
                 min_scale: float = 1.0, mean_loss: str = "mse",
                 covariates: Sequence[str] | None = None,
                 train_quantiles: Sequence[float] = TRAIN_QUANTILES,
                 seed: int | None = None, num_threads: int = 2,
                 max_gap_days: int = 28) -> None:
        if not 7 <= context <= 366:
            raise ValueError(f"LSTMForecaster: context must be in 7..366 days, got {context}")
        if horizon < 1 or hidden < 1 or max_windows < 1 or epochs < 1 or patience < 1:
            raise ValueError("LSTMForecaster: horizon, hidden, max_windows, epochs and patience "
                             "must be >= 1")
        if batch_size < 1 or not learning_rate > 0 or not min_scale > 0 or num_threads < 1:
            raise ValueError("LSTMForecaster: need batch_size >= 1, learning_rate > 0, "
                             "min_scale > 0 and num_threads >= 1")
        if not 1 <= min_context <= context:
            raise ValueError(f"LSTMForecaster: min_context must be in 1..context, "
                             f"got {min_context}")
        if max_gap_days < 0:
            raise ValueError(f"LSTMForecaster: max_gap_days must be >= 0, got {max_gap_days}")
        if val_days is not None and val_days < 0:
            raise ValueError(f"LSTMForecaster: val_days must be >= 0, got {val_days}")
        if mean_loss not in ("mse", "poisson"):
            raise ValueError(f"LSTMForecaster: mean_loss must be 'mse' or 'poisson', "
                             f"got {mean_loss!r}")
        quantile_columns(train_quantiles)  # validates: increasing whole percents
        self.context, self.horizon, self.hidden = context, horizon, hidden
        self.max_windows, self.epochs, self.patience = max_windows, epochs, patience
        self.batch_size, self.learning_rate = batch_size, learning_rate
        self.val_days = max(14, horizon) if val_days is None else val_days
        self.min_context, self.min_scale, self.mean_loss = min_context, min_scale, mean_loss
        self.covariates = None if covariates is None else tuple(covariates)
        self.train_quantiles = tuple(float(q) for q in train_quantiles)
        self.seed, self.num_threads, self.max_gap_days = seed, num_threads, max_gap_days
        self._panel: _Panel | None = None
        self._net: _Net | None = None
        self._seed = ModelConfig().seed
        #: Covariates the network reads, fixed by ``fit``.
        self.covariates_: tuple[str, ...] = ()
        #: Per epoch: (training loss, validation loss or NaN).
        self.history_: list[tuple[float, float]] = []
        self.best_epoch_ = 0
        self.n_windows_ = (0, 0)  # (training, validation)
        self.fit_seconds_ = math.nan

    # ----------------------------------------------------------------------------- fit
    @property
    def cutoff(self) -> pd.Timestamp:
        """The last date of the training frame; forecasts start the day after."""
        return self._fitted()[0].cutoff

    def _fitted(self) -> tuple[_Panel, _Net]:
        if self._panel is None or self._net is None:
            raise RuntimeError("LSTMForecaster: call fit(train, cfg) before predict")
        return self._panel, self._net

    def fit(self, train: pd.DataFrame, cfg: ModelConfig | None = None) -> Self:
        """Learn from ``train`` (see ``protocol.check_train``); returns self."""
        began = time.perf_counter()
        cfg = cfg if cfg is not None else ModelConfig()
        self._seed = self.seed if self.seed is not None else cfg.seed
        df = check_train(train)
        self.covariates_ = self._pick_covariates(df)
        panel = _panel(df, self.covariates_)
        rng = np.random.default_rng(self._seed)
        train_idx, val_idx = self._window_index(panel.values, rng)
        with _torch_session(self._seed, self.num_threads):
            vals, cov = self._padded(panel)
            fit_w = self._windows(panel.start, vals, cov, *train_idx)
            val_w = (self._windows(panel.start, vals, cov, *val_idx) if len(val_idx[0])
                     else None)
            net = _Net(fit_w.past.shape[2], fit_w.future.shape[1], self.hidden, self.horizon,
                       len(self.train_quantiles))
            self._train(net, fit_w, val_w)
        self._panel, self._net = panel.tail(self.context), net  # all predict reads
        self.n_windows_ = (len(fit_w), 0 if val_w is None else len(val_w))
        self.fit_seconds_ = time.perf_counter() - began
        log.info("lstm: fitted %d series on %d training / %d validation windows in %.1f s "
                 "(best epoch %d of %d)", len(panel.keys), *self.n_windows_, self.fit_seconds_,
                 self.best_epoch_, len(self.history_))
        return self

    def _pick_covariates(self, df: pd.DataFrame) -> tuple[str, ...]:
        if self.covariates is None:
            return tuple(c for c in KNOWN_COVARIATES if c in df.columns)
        missing = [c for c in self.covariates if c not in df.columns]
        if missing:
            raise ValueError(f"LSTMForecaster: covariate column(s) {missing} are not in the "
                             f"training frame (has {list(df.columns)})")
        return self.covariates

    def _window_index(self, values: np.ndarray, rng: np.random.Generator
                      ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """(series, cutoff) index pairs of the training sample and of the validation tail."""
        n, days = values.shape
        val_days = self.val_days
        first = self.min_context - 1
        last_fit = days - 1 - val_days - self.horizon  # last cutoff with targets before the tail
        if val_days > 0 and last_fit < first:
            log.warning("lstm: %d days are too few for a %d-day validation tail; training "
                        "%d epochs without early stopping", days, val_days, self.epochs)
            val_days, last_fit = 0, days - 1 - self.horizon
        last_fit = max(last_fit, min(first, days - 2))  # short frames: partial targets
        if last_fit < first:
            raise ValueError(f"LSTMForecaster: the training frame spans {days} day(s); need at "
                             f"least min_context + 1 = {self.min_context + 1}")
        fit_idx = self._sample(n, np.arange(first, last_fit + 1), self.max_windows, rng)
        val_idx = (np.empty(0, "int64"), np.empty(0, "int64"))
        if val_days > 0:
            cuts = np.arange(max(days - 1 - val_days, first), days - 1)
            val_idx = self._sample(n, cuts, max(self.max_windows // 4, 1), rng)
        return self._keep_observed(values, fit_idx), self._keep_observed(values, val_idx)

    @staticmethod
    def _sample(n: int, cuts: np.ndarray, size: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
        total = n * len(cuts)
        flat = np.arange(total) if total <= size else np.sort(rng.choice(total, size,
                                                                        replace=False))
        return flat // len(cuts), cuts[flat % len(cuts)]

    def _keep_observed(self, values: np.ndarray, idx: tuple[np.ndarray, np.ndarray]
                       ) -> tuple[np.ndarray, np.ndarray]:
        series, cut = idx
        days = values.shape[1]
        target = cut[:, None] + np.arange(1, self.horizon + 1)[None, :]
        inside = target < days
        seen = np.isfinite(values[series[:, None], np.minimum(target, days - 1)]) & inside
        keep = seen.any(axis=1)
        return series[keep], cut[keep]

    def _padded(self, panel: _Panel, after: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Demand (n, L + T + H), NaN-padded, and covariates (n, L + T + H, C), 0-padded,
        with ``after`` (n, H, C), the covariates of the days after the cutoff, at the end."""
        L, H, C = self.context, self.horizon, len(self.covariates_)
        n = len(panel.keys)
        vals = np.concatenate([np.full((n, L), np.nan), panel.values,
                               np.full((n, H), np.nan)], axis=1)
        tail = np.zeros((n, H, C), "float32") if after is None else after.astype("float32")
        cov = np.concatenate([np.zeros((n, L, C), "float32"), panel.covariates, tail], axis=1)
        return vals, cov

    def _windows(self, start: pd.Timestamp, vals: np.ndarray, cov: np.ndarray,
                 series: np.ndarray, cut: np.ndarray) -> _Windows:
        """Tensors of the windows (series[i], cutoff day cut[i]) from ``_padded`` arrays."""
        L, H = self.context, self.horizon
        past_days = cut[:, None] + np.arange(-L + 1, 1)[None, :]  # (B, L) day index
        y = vals[series[:, None], past_days + L]
        seen = np.isfinite(y)
        count = seen.sum(axis=1)
        total = np.where(seen, y, 0.0).sum(axis=1)
        scale = np.maximum(np.divide(total, count, out=np.zeros(len(y)), where=count > 0),
                           self.min_scale)
        past = np.concatenate([np.where(seen, y / scale[:, None], 0.0)[:, :, None],
                               seen[:, :, None].astype("float64"),
                               self._dow(start, past_days),
                               cov[series[:, None], past_days + L]], axis=2)
        fut_days = cut[:, None] + np.arange(1, H + 1)[None, :]
        fut = np.concatenate([self._dow(start, fut_days),
                              cov[series[:, None], fut_days + L]], axis=2)
        target = vals[series[:, None], fut_days + L]
        mask = np.isfinite(target)
        return _Windows(
            past=torch.as_tensor(past, dtype=torch.float32),
            future=torch.as_tensor(fut.reshape(len(series), -1), dtype=torch.float32),
            log_scale=torch.as_tensor(np.log(scale), dtype=torch.float32),
            target=torch.as_tensor(np.where(mask, target / scale[:, None], 0.0),
                                   dtype=torch.float32),
            mask=torch.as_tensor(mask, dtype=torch.float32))

    @staticmethod
    def _dow(start: pd.Timestamp, days: np.ndarray) -> np.ndarray:
        dow = (start.dayofweek + days) % _DOW
        return np.eye(_DOW)[dow]

    def _loss(self, net: _Net, w: _Windows) -> torch.Tensor:
        mean, quant = net(w.past, w.future, w.log_scale)
        if self.mean_loss == "poisson":
            point = mean - w.target * torch.log(mean + 1e-6)
        else:
            point = (mean - w.target) ** 2
        taus = torch.tensor(self.train_quantiles, dtype=torch.float32)
        diff = w.target[:, :, None] - quant
        pinball = torch.maximum(taus * diff, (taus - 1.0) * diff).sum(dim=2)
        per_day = (point + pinball) * w.mask
        return per_day.sum() / w.mask.sum().clamp(min=1.0)

    def _train(self, net: _Net, fit_w: _Windows, val_w: _Windows | None) -> None:
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        best, best_state, stale = math.inf, copy.deepcopy(net.state_dict()), 0
        self.history_, self.best_epoch_ = [], 0
        for epoch in range(1, self.epochs + 1):
            net.train()
            order = torch.randperm(len(fit_w))
            total, batches = 0.0, 0
            for lo in range(0, len(fit_w), self.batch_size):
                batch = fit_w.take(order[lo:lo + self.batch_size])
                opt.zero_grad()
                loss = self._loss(net, batch)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                total, batches = total + loss.item(), batches + 1
            net.eval()
            with torch.no_grad():
                val = float(self._loss(net, val_w)) if val_w is not None else math.nan
            self.history_.append((total / max(batches, 1), val))
            score = val if val_w is not None else total / max(batches, 1)
            if score < best - 1e-6:
                best, best_state, stale, self.best_epoch_ = score, copy.deepcopy(
                    net.state_dict()), 0, epoch
            else:
                stale += 1
                if val_w is not None and stale >= self.patience:
                    break
        net.load_state_dict(best_state)
        net.eval()

    # ------------------------------------------------------------------------- predict
    def predict(self, horizon: int, quantiles: Sequence[float] = QUANTILES,
                future: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast days 1..``horizon`` (at most the trained ``horizon``) after the cutoff;
        ``future`` carries the known covariates of the target days (see the module
        docstring)."""
        panel, net = self._fitted()
        return self._forecast(panel, net, horizon, quantiles, future, "predict")

    def forecast_from(self, history: pd.DataFrame, horizon: int,
                      quantiles: Sequence[float] = QUANTILES,
                      future: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast days 1..``horizon`` after ``history``'s last date for every series in
        ``history`` (a training frame with the fit's covariates) with the trained network;
        ``future`` as in ``predict``. The model is not changed."""
        _, net = self._fitted()
        df = check_train(history, "history")
        missing = [c for c in self.covariates_ if c not in df.columns]
        if missing:
            raise ValueError(f"LSTMForecaster.forecast_from: history lacks the covariate "
                             f"column(s) {missing} the network was trained with (has "
                             f"{list(df.columns)})")
        panel = _panel(df, self.covariates_, days=self.context)
        _warn_gap(self.cutoff, panel.cutoff, self.max_gap_days)
        return self._forecast(panel, net, horizon, quantiles, future, "forecast_from")

    def _forecast(self, panel: _Panel, net: _Net, horizon: int, quantiles: Sequence[float],
                  future: pd.DataFrame | None, caller: str) -> pd.DataFrame:
        """Forecast of every series of ``panel`` from its last day."""
        what = f"LSTMForecaster.{caller}"
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
            raise ValueError(f"{what}: horizon must be an int >= 1, got {horizon!r}")
        if horizon > self.horizon:
            raise ValueError(f"{what}: horizon {horizon} exceeds the {self.horizon} days the "
                             f"network was trained for; refit with "
                             f"LSTMForecaster(horizon={horizon})")
        quantile_columns(quantiles)
        qs = np.asarray(quantiles, dtype="float64")
        lo, hi = self.train_quantiles[0], self.train_quantiles[-1]
        if qs.min() < lo - 1e-9 or qs.max() > hi + 1e-9:
            raise ValueError(f"{what}: quantile levels must lie within the trained levels "
                             f"[{lo}, {hi}]; refit with train_quantiles covering "
                             f"{list(quantiles)}")
        n, days = panel.values.shape
        vals, cov = self._padded(panel, self._future_covariates(panel, future))
        series = np.arange(n)
        cut = np.full(n, days - 1)
        means, quants = [], []
        with _torch_session(self._seed, self.num_threads), torch.no_grad():
            for start in range(0, n, _PREDICT_BATCH):
                part = slice(start, start + _PREDICT_BATCH)
                w = self._windows(panel.start, vals, cov, series[part], cut[part])
                mean, quant = net(w.past, w.future, w.log_scale)
                scale = torch.exp(w.log_scale)[:, None]
                means.append((mean * scale).numpy().astype("float64"))
                quants.append((quant * scale[:, :, None]).numpy().astype("float64"))
        mean_arr = np.concatenate(means)[:, :horizon]
        q_arr = _interpolate(np.concatenate(quants)[:, :horizon], self.train_quantiles, qs)
        q_arr = np.maximum.accumulate(np.clip(q_arr, 0.0, None), axis=2)
        return forecast_frame(panel.keys, panel.cutoff, np.clip(mean_arr, 0.0, None), q_arr,
                              quantiles)

    def _future_covariates(self, panel: _Panel, future: pd.DataFrame | None) -> np.ndarray:
        """(n, H, C) covariates of the days after the cutoff, 0 where ``future`` is silent."""
        n, H, C = len(panel.keys), self.horizon, len(self.covariates_)
        out = np.zeros((n, H, C), dtype="float32")
        if C == 0:
            return out
        if future is None:
            log.warning("lstm: trained with covariates %s but got no future frame; "
                        "assuming 0 (none) on the target days", list(self.covariates_))
            return out
        missing = [c for c in (*KEY, "date") if c not in future.columns]
        if missing:
            raise ValueError(f"LSTMForecaster: future lacks column(s) {missing}")
        absent = [c for c in self.covariates_ if c not in future.columns]
        if absent:
            log.warning("lstm: future lacks covariate(s) %s; assuming 0", absent)
        fut = future.copy()
        fut["_h"] = ((pd.to_datetime(fut["date"]).dt.normalize() - panel.cutoff)
                     // pd.Timedelta(days=1)).astype("int64")
        fut = fut.loc[(fut["_h"] >= 1) & (fut["_h"] <= H)]
        pos = pd.MultiIndex.from_frame(panel.keys).get_indexer(
            pd.MultiIndex.from_frame(fut[list(KEY)]))
        fut, pos = fut.loc[pos >= 0], pos[pos >= 0]
        h = fut["_h"].to_numpy() - 1
        for j, col in enumerate(self.covariates_):
            if col in fut.columns:
                out[pos, h, j] = _numeric(fut[col])
        return out


def _warn_gap(fit_cutoff: pd.Timestamp, cutoff: pd.Timestamp, max_gap_days: int) -> None:
    """Log a warning when forecasting from ``cutoff`` with a network fitted up to
    ``fit_cutoff`` leaks (earlier) or is stale (more than ``max_gap_days`` later)."""
    gap = (cutoff - fit_cutoff) // pd.Timedelta(days=1)
    if gap < 0:
        log.warning("lstm: forecasting from %s, %d day(s) before the fit's cutoff %s: the "
                    "network learnt from later data (a leak in a backtest; fit at that "
                    "cutoff instead)", cutoff.date(), -gap, fit_cutoff.date())
    elif gap > max_gap_days:
        log.warning("lstm: forecasting from %s, %d days after the fit's cutoff %s (more than "
                    "max_gap_days=%d): the network may be stale; retrain", cutoff.date(), gap,
                    fit_cutoff.date(), max_gap_days)


def _interpolate(q: np.ndarray, levels: Sequence[float], wanted: np.ndarray) -> np.ndarray:
    """Values at ``wanted`` levels from values (n, H, K) at ``levels``, linearly in the level."""
    grid = np.asarray(levels, dtype="float64")
    hi = np.clip(np.searchsorted(grid, wanted - 1e-12), 0, len(grid) - 1)
    lo = np.clip(hi - 1, 0, len(grid) - 1)
    width = grid[hi] - grid[lo]
    frac = np.divide(wanted - grid[lo], width, out=np.zeros_like(wanted), where=width > 0)
    frac = np.clip(frac, 0.0, 1.0)
    return q[:, :, lo] + (q[:, :, hi] - q[:, :, lo]) * frac[None, None, :]
