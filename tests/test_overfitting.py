"""The Deflated Sharpe Ratio and the Probability of Backtest Overfitting (``bot.backtest.overfitting``)
against the papers' definitions, computed independently here with scipy (normal quantiles,
ranks, logits, moments) on the raw returns rather than on the module's block sums.

Bailey and López de Prado (2014), "The Deflated Sharpe Ratio", equations for SR0 and DSR, and
its worked example (N = 100, V = 1/2 a year, T = 1,250 days, skew -3, kurtosis 10, SR 2.5 a year:
DSR 0.9004). Bailey, Borwein, López de Prado and Zhu (2017), "The Probability of Backtest
Overfitting", section 2 (CSCV): S blocks, C(S, S/2) splits, relative rank w = rank / (N + 1),
logit, PBO = the share of logits at or below 0."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy import special, stats

from bot import metrics
from bot.backtest import overfitting as of

EULER = 0.5772156649015329


def reference_dsr(chosen: np.ndarray, trial_sharpes: np.ndarray) -> float:
    n = len(trial_sharpes)
    sr = np.mean(chosen) / np.std(chosen, ddof=1)
    if n > 1:
        v = np.var(trial_sharpes, ddof=1)
        sr0 = math.sqrt(v) * (
            (1 - EULER) * stats.norm.ppf(1 - 1 / n) + EULER * stats.norm.ppf(1 - 1 / (n * math.e))
        )
    else:
        sr0 = 0.0
    skew = stats.skew(chosen, bias=True)
    kurt = stats.kurtosis(chosen, fisher=False, bias=True)
    t = len(chosen)
    z = (sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    return float(stats.norm.cdf(z))


def reference_pbo(matrix: np.ndarray, s: int) -> float:
    """CSCV on the full matrix, as the paper writes it: blocks of rows, every half as the training
    set, the training best's test Sharpe ranked (scipy's average ranks), logit, share <= 0."""
    t, n = matrix.shape
    m = matrix[t % s :]
    size = len(m) // s
    parts = [m[i * size : (i + 1) * size] for i in range(s)]

    def sharpe(x: np.ndarray) -> np.ndarray:
        sd = np.std(x, axis=0, ddof=1)
        return np.where(sd > 0, np.mean(x, axis=0) / np.where(sd > 0, sd, 1), 0.0)

    logits = []
    for train in combinations(range(s), s // 2):
        test = [i for i in range(s) if i not in train]
        r = sharpe(np.concatenate([parts[i] for i in train]))
        r_bar = sharpe(np.concatenate([parts[i] for i in test]))
        best = int(np.argmax(r))
        w = stats.rankdata(r_bar)[best] / (n + 1)
        logits.append(special.logit(w))
    return float(np.mean(np.array(logits) <= 0))


def returns(t: int, seed: int, drift: float = 0.0, skewed: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = rng.normal(drift, 0.01, t)
    if skewed:  # occasional large losses: negative skew, fat tails
        r -= (rng.random(t) < 0.02) * 0.05
    return r


@pytest.mark.parametrize("skewed", [False, True])
@pytest.mark.parametrize("trials", [2, 10, 400])
def test_dsr_equals_the_papers_formula(trials, skewed):
    chosen = returns(2_000, 1, drift=0.002, skewed=skewed)
    rng = np.random.default_rng(2)
    sharpes = np.r_[np.mean(chosen) / np.std(chosen, ddof=1), rng.normal(0, 0.03, trials - 1)]
    result = of.deflated_sharpe(of.shape(chosen), sharpes.tolist(), 252.0)
    assert result.dsr == pytest.approx(reference_dsr(chosen, sharpes), abs=1e-10)
    assert result.skewness == pytest.approx(stats.skew(chosen), rel=1e-8)
    assert result.kurtosis == pytest.approx(stats.kurtosis(chosen, fisher=False), rel=1e-8)
    assert result.trials == trials and result.observations == 2_000
    assert result.trials_sharpe_variance == pytest.approx(np.var(sharpes, ddof=1))
    assert 0 < result.dsr < 1


def test_dsr_with_one_trial_is_the_probabilistic_sharpe_ratio_against_zero():
    chosen = returns(500, 3, drift=0.001, skewed=True)
    result = of.deflated_sharpe(of.shape(chosen), [of.moments(chosen).sharpe], 252.0)
    assert result.expected_max_sharpe == 0.0 and result.trials == 1
    sr = np.mean(chosen) / np.std(chosen, ddof=1)
    skew, kurt = stats.skew(chosen), stats.kurtosis(chosen, fisher=False)
    psr = stats.norm.cdf(sr * math.sqrt(499) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    assert result.dsr == pytest.approx(psr, abs=1e-12)
    assert result.dsr == pytest.approx(of.probabilistic_sharpe(sr, 0.0, 500, skew, kurt), abs=1e-12)
    assert result.dsr == pytest.approx(reference_dsr(chosen, np.array([sr])), abs=1e-12)


def test_the_papers_worked_example():
    """N = 100 trials whose Sharpe ratios vary by 1/2 a year, T = 1,250 daily returns, skew -3,
    kurtosis 10, an annual Sharpe ratio of 2.5: SR0 = 0.1132 a day, DSR = 0.9004."""
    sr0 = of.expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = of.probabilistic_sharpe(2.5 / math.sqrt(250), sr0, 1_250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-4)
    q = stats.norm.ppf
    assert sr0 == pytest.approx(
        math.sqrt(0.5 / 250) * ((1 - EULER) * q(0.99) + EULER * q(1 - 1 / (100 * math.e)))
    )


def test_more_trials_deflate_more():
    chosen = of.shape(returns(1_000, 4, drift=0.001))
    values = [of.deflated_sharpe(chosen, [0.0, 0.05] * (n // 2), 252.0).dsr for n in (2, 20, 200, 2_000)]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]


def test_moments_are_the_returns_own():
    r = returns(995, 5, skewed=True)
    m = of.moments(r, 16)
    assert m.count == 995 and m.block_size == 62  # 995 = 3 + 16 x 62: the first 3 left out
    assert m.sharpe == pytest.approx(metrics.sharpe_of_returns(r, 1.0), rel=1e-10)
    assert np.allclose(m.block_sums, r[3:].reshape(16, 62).sum(axis=1), rtol=0, atol=1e-15)
    assert np.allclose(m.block_squares, (r[3:] ** 2).reshape(16, 62).sum(axis=1), rtol=1e-14, atol=0)
    assert (m.head_sum, m.head_squares) == (pytest.approx(r[:3].sum()), pytest.approx((r[:3] ** 2).sum()))
    assert of.moments(np.zeros(100)).sharpe == 0.0  # a combination that never traded
    described = of.shape(r)
    assert described.sharpe == pytest.approx(m.sharpe, rel=1e-10)
    assert described.skewness == pytest.approx(stats.skew(r), rel=1e-10)
    assert described.kurtosis == pytest.approx(stats.kurtosis(r, fisher=False), rel=1e-10)
    assert math.isnan(of.shape(np.zeros(50)).skewness) and of.shape(np.zeros(50)).sharpe == 0.0


@pytest.mark.parametrize(("n", "s", "seed"), [(2, 4, 1), (8, 8, 2), (20, 16, 3), (50, 10, 4)])
def test_pbo_equals_cscv_on_the_whole_matrix(n, s, seed):
    rng = np.random.default_rng(seed)
    t = 64 * s + 5  # a remainder the blocks leave out
    matrix = rng.normal(0, 0.01, (t, n)) + rng.normal(0, 0.0005, n)  # small true differences
    assert of.pbo_from_returns(matrix, s) == reference_pbo(matrix, s)


def test_pbo_with_ties_ranks_them_on_average():
    """Two identical combinations and one that never trades (Sharpe 0 on every half)."""
    rng = np.random.default_rng(9)
    a = rng.normal(0.0005, 0.01, 320)
    matrix = np.c_[a, a, np.zeros(320), rng.normal(0, 0.01, 320)]
    assert of.pbo_from_returns(matrix, 8) == reference_pbo(matrix, 8)


def test_pbo_by_hand():
    """S = 2 blocks, so two splits. A earns in the first half and loses in the second, B the
    opposite: whichever half is in sample, its best is the worst out of sample (w = 1/3): PBO 1.
    With one that earns in both halves against one that loses in both, the best in sample is
    the best out of sample (w = 2/3): PBO 0."""
    up, down = np.tile([0.02, 0.0], 10), np.tile([-0.02, 0.0], 10)
    a, b = np.r_[up, down], np.r_[down, up]
    result = of.backtest_overfitting([of.moments(a, 2), of.moments(b, 2)], 2)
    assert result.pbo == 1.0 and result.splits == 2
    assert result.median_logit == pytest.approx(math.log((1 / 3) / (2 / 3)))
    steady, losing = np.r_[up, up], np.r_[down, down]
    both = of.backtest_overfitting([of.moments(losing, 2), of.moments(steady, 2)], 2)
    assert both.pbo == 0.0 and both.median_logit == pytest.approx(math.log(2))


def test_pbo_of_pure_noise_is_about_a_half_and_of_a_real_edge_is_zero():
    rng = np.random.default_rng(11)
    noise = rng.normal(0, 0.01, (3_200, 40))
    assert 0.25 < of.pbo_from_returns(noise) < 0.75
    edge = noise.copy()
    edge[:, 7] += 0.004  # one combination with a strong true edge
    assert of.pbo_from_returns(edge) == 0.0


def test_pbo_is_undefined_with_one_combination_or_too_few_bars():
    one = of.backtest_overfitting([of.moments(returns(400, 1))])
    assert math.isnan(one.pbo) and "one combination" in one.reason and "n/a" in one.meaning
    short = of.backtest_overfitting([of.moments(returns(20, 1)), of.moments(returns(20, 2))])
    assert math.isnan(short.pbo) and "too few" in short.reason
    with pytest.raises(ValueError, match="even"):
        of.backtest_overfitting([of.moments(returns(400, 1), 3)] * 2, 3)


def test_the_report_names_every_input_and_says_what_it_means():
    chosen = returns(2_000, 1, drift=0.001)
    trials = [of.moments(chosen), *(of.moments(returns(2_000, k)) for k in range(2, 12))]
    result = of.overfitting(of.shape(chosen), trials, 252.0)
    doc = result.as_dict()
    assert set(doc) == {"deflated_sharpe", "pbo", "meaning"}
    assert set(doc["deflated_sharpe"]) == {
        "dsr", "sharpe_per_bar", "sharpe_annualised", "trials", "trials_sharpe_variance_per_bar",
        "expected_max_sharpe_per_bar", "expected_max_sharpe_annualised", "observations", "skewness", "kurtosis",
    }  # fmt: skip
    assert doc["deflated_sharpe"]["trials"] == 11 and doc["pbo"]["splits"] == 12_870
    assert doc["meaning"]["deflated_sharpe"].startswith(f"Deflated Sharpe ratio {result.deflated.dsr:.2f}: ")
    assert "11 combinations with no skill" in doc["meaning"]["deflated_sharpe"]
    assert "12,870 ways" in doc["meaning"]["pbo"]
    text = "\n".join(result.lines())
    assert "11 combinations tried" in text and "2,000 returns" in text and "skewness" in text
