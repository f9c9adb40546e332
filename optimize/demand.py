"""Demand over a window, from a daily forecast of mean and quantiles.

Choice (documented in one place): each day's variance comes from the spread of the upper
quantiles around the mean, read through the normal approximation,

    sigma_h = mean over p in (0.8, 0.9, 0.95, 0.99) of max(q_p - mean_h, 0) / z_p,
    var_h   = max(sigma_h ** 2, mean_h)            (never below Poisson),

(a little conservative: the normal reading of a right-skewed count's upper quantiles
overstates its spread, by up to ~40% for means of a few units), and demand over a window of
days is a gamma distribution with the summed means and summed variances (days independent
given the forecast). The gamma gives closed forms for the expected shortfall E[(D - S)+],
its slope -P(D > S) and its quantiles, so every piecewise function is exact at its
breakpoints and costs microseconds per line. It is continuous; order quantities are whole
cases, which it serves well. Independence across days
understates the variance of long windows when forecast errors persist; most windows here
are 1-3 days.

Old stock ages FIFO against the *mean* forecast (a fluid approximation): the units that
would still expire unsold then are not counted as usable (:func:`fluid_fifo_waste`).
"""
from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["Z_UPPER", "daily_variance", "gamma_loss", "gamma_cdf", "gamma_ppf",
           "gamma_mean_above", "fluid_fifo_waste"]

#: Normal quantiles of the upper forecast levels used for the spread (q80, q90, q95, q99).
Z_UPPER = np.array([0.8416212335729143, 1.2815515655446004, 1.6448536269514722,
                    2.3263478740408408])
_TINY = 1e-9


def daily_variance(mean: np.ndarray, upper_quantiles: np.ndarray) -> np.ndarray:
    """Variance of each day's demand; ``upper_quantiles[..., j]`` are q80, q90, q95, q99."""
    spread = np.maximum(upper_quantiles - mean[..., None], 0.0) / Z_UPPER
    sigma = spread.mean(axis=-1)
    return np.maximum(sigma ** 2, mean)


def _shape_scale(mu: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = np.maximum(mu, _TINY)
    var = np.maximum(var, _TINY)
    return mu * mu / var, var / mu


def gamma_loss(mu: np.ndarray, var: np.ndarray, s: np.ndarray) -> np.ndarray:
    """E[(D - s)+] for D ~ gamma(mean mu, variance var); D = 0 where mu = 0."""
    mu, var, s = np.broadcast_arrays(np.asarray(mu, float), np.asarray(var, float),
                                     np.asarray(s, float))
    k, theta = _shape_scale(mu, var)
    z = np.maximum(s, 0.0) / theta
    loss = mu * special.gammaincc(k + 1, z) - np.maximum(s, 0.0) * special.gammaincc(k, z)
    loss = np.where(s < 0, mu - s, np.maximum(loss, 0.0))
    return np.where(mu > _TINY, loss, np.maximum(-s, 0.0))


def gamma_cdf(mu: np.ndarray, var: np.ndarray, s: np.ndarray) -> np.ndarray:
    """P(D <= s)."""
    mu, var, s = np.broadcast_arrays(np.asarray(mu, float), np.asarray(var, float),
                                     np.asarray(s, float))
    k, theta = _shape_scale(mu, var)
    cdf = np.where(s > 0, special.gammainc(k, np.maximum(s, 0.0) / theta), 0.0)
    return np.where(mu > _TINY, cdf, (s >= 0).astype(float))


def gamma_ppf(mu: np.ndarray, var: np.ndarray, p: float) -> np.ndarray:
    """The p-quantile of D."""
    k, theta = _shape_scale(np.asarray(mu, float), np.asarray(var, float))
    return np.where(np.asarray(mu) > _TINY, special.gammaincinv(k, p) * theta, 0.0)


def gamma_mean_above(mu: np.ndarray, var: np.ndarray, s: np.ndarray) -> np.ndarray:
    """E[D | D >= s] for D ~ gamma(mean mu, variance var): what a day whose shelf emptied
    after selling s units most likely demanded (s + E[(D - s)+] / P(D > s)); s itself where
    the tail is negligible or there is no demand (mu = 0), and at least s."""
    mu, var, s = np.broadcast_arrays(np.asarray(mu, float), np.asarray(var, float),
                                     np.asarray(s, float))
    tail = 1.0 - gamma_cdf(mu, var, s)
    loss = gamma_loss(mu, var, s)
    ok = (mu > _TINY) & (tail > 1e-9)
    extra = np.divide(loss, tail, out=np.zeros_like(loss), where=ok)
    return np.maximum(s, 0.0) + np.where(ok, extra, 0.0)


def fluid_fifo_waste(buckets: np.ndarray, daily_mean: np.ndarray) -> np.ndarray:
    """Cumulative units of old stock written off by the end of each day, FIFO, mean demand.

    ``buckets[:, j]`` (j = 0..6) expire at the end of day j + 1; ``buckets[:, 7]`` last beyond
    the window. ``daily_mean[:, t]`` is day t + 1's expected demand. Returns ``(n, days + 1)``
    with column 0 = 0.
    """
    b = buckets.astype(float).copy()
    n, days = daily_mean.shape
    out = np.zeros((n, days + 1))
    for t in range(days):
        left = np.maximum(np.cumsum(b, axis=1) - daily_mean[:, t:t + 1], 0.0)
        b = np.diff(left, axis=1, prepend=0.0)
        out[:, t + 1] = out[:, t] + b[:, 0]
        b[:, :6] = b[:, 1:7]
        b[:, 6] = 0.0
    return out
