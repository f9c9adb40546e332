"""Window demand: gamma loss function, variance from quantiles, FIFO ageing of old stock."""
from __future__ import annotations

import numpy as np
import pytest

from optimize.demand import (
    daily_variance,
    fluid_fifo_waste,
    gamma_cdf,
    gamma_loss,
    gamma_mean_above,
    gamma_ppf,
)
from tests.optimize.helpers import nb_quantiles


@pytest.mark.parametrize(("mu", "var"), [(10.0, 25.0), (0.4, 0.6), (150.0, 900.0)])
def test_gamma_loss_against_monte_carlo(mu, var):
    rng = np.random.default_rng(0)
    d = rng.gamma(mu * mu / var, var / mu, 1_000_000)
    for s in (0.0, 0.5 * mu, mu, mu + np.sqrt(var), mu + 3 * np.sqrt(var)):
        mc = np.maximum(d - s, 0).mean()
        assert gamma_loss(mu, var, s) == pytest.approx(mc, rel=0.02, abs=1e-3 * mu)
        assert gamma_cdf(mu, var, s) == pytest.approx((d <= s).mean(), abs=3e-3)
    assert gamma_cdf(mu, var, gamma_ppf(mu, var, 0.9)) == pytest.approx(0.9)


def test_gamma_loss_edges():
    assert gamma_loss(10.0, 20.0, 0.0) == pytest.approx(10.0)  # nothing on the shelf
    assert gamma_loss(0.0, 0.0, 5.0) == 0.0  # no demand
    assert gamma_loss(10.0, 20.0, 1e4) == pytest.approx(0.0, abs=1e-12)
    s = np.linspace(0, 40, 81)
    loss = gamma_loss(10.0, 20.0, s)
    assert (np.diff(loss) <= 1e-12).all() and (np.diff(loss, 2) >= -1e-12).all()  # convex


def test_daily_variance_from_quantiles():
    mean = np.array([20.0, 3.0])
    k = 8.0
    q = nb_quantiles(mean, k)
    var = daily_variance(mean, q[:, 1:])
    true = mean + mean ** 2 / k
    # Skewed, integer quantiles read through the normal: a little conservative, not wild.
    assert (var >= true).all() and (var <= 1.5 * true).all()
    # Quantiles no wider than the mean itself: never below Poisson.
    assert daily_variance(np.array([5.0]), np.full((1, 4), 5.0))[0] == 5.0


def test_fluid_fifo_ages_old_stock_first():
    b = np.zeros((2, 8))
    b[0, 0], b[0, 7] = 10, 5  # 10 expire tonight-ish (end of day 1), 5 last
    b[1, 1] = 10  # 10 expire at the end of day 2
    out = fluid_fifo_waste(b, np.full((2, 3), 4.0))
    assert out[0].tolist() == [0, 6, 6, 6]
    assert out[1].tolist() == [0, 0, 2, 2]


@pytest.mark.parametrize(("mu", "var"), [(10.0, 25.0), (2.0, 3.0)])
def test_gamma_mean_above_against_monte_carlo(mu, var):
    rng = np.random.default_rng(1)
    d = rng.gamma(mu * mu / var, var / mu, 1_000_000)
    for s in (0.0, 0.5 * mu, mu, mu + 2 * np.sqrt(var)):
        mc = d[d >= s].mean()
        assert gamma_mean_above(mu, var, s) == pytest.approx(mc, rel=0.01)


def test_gamma_mean_above_edges():
    # a shelf that emptied after selling s units: demand was at least s, and more than the
    # mean when s is below it
    assert gamma_mean_above(10.0, 20.0, 0.0) == pytest.approx(10.0)
    assert gamma_mean_above(10.0, 20.0, 4.0) > 10.0
    assert gamma_mean_above(0.0, 0.0, 3.0) == 3.0  # no forecast demand: s itself
    assert gamma_mean_above(1.0, 1.0, 1e4) == 1e4  # negligible tail: s itself
    s = np.array([1.0, 5.0, 12.0, 30.0])
    out = gamma_mean_above(np.full(4, 10.0), np.full(4, 20.0), s)
    assert (out >= s).all() and (np.diff(out) > 0).all()
