"""How much of a sweep's best result is luck: the Deflated Sharpe Ratio and the Probability of
Backtest Overfitting, as pure functions (numpy and the standard library only).

A sweep picks the best of N combinations; its Sharpe ratio is the largest of N noisy estimates,
so it overstates what the chosen combination will do. Two measures say by how much:

- **Deflated Sharpe Ratio** (Bailey and López de Prado, "The Deflated Sharpe Ratio: Correcting
  for Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management,
  2014): the probability that the chosen combination's true Sharpe ratio exceeds ``SR0``, the
  Sharpe ratio the best of N combinations with no skill at all would be expected to show::

      SR0 = sqrt(V) * ((1 - g) * Z^-1(1 - 1/N) + g * Z^-1(1 - 1/(N e)))     g = 0.5772... (Euler)
      DSR = Z((SR - SR0) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR^2))

  where SR is the chosen combination's Sharpe ratio per bar (not annualised), V the variance
  (ddof 1) of the N combinations' Sharpe ratios per bar, T the number of returns, skew and
  kurtosis those of the chosen combination's returns (population moments; kurtosis 3 for a
  normal distribution), Z the standard normal distribution. With N = 1 there is no selection:
  SR0 = 0 and the DSR is the Probabilistic Sharpe Ratio against zero (``probabilistic_sharpe``).

- **Probability of Backtest Overfitting** by combinatorially symmetric cross-validation (Bailey,
  Borwein, López de Prado and Zhu, "The Probability of Backtest Overfitting", Journal of
  Computational Finance, 2017; S = 16 blocks by default): the returns of every combination are
  cut into S equal blocks of bars (the first ``T mod S`` returns left out); for each of the
  C(S, S/2) ways to take half the blocks as the in-sample set and the rest as the out-of-sample
  one, the combination with the best in-sample Sharpe ratio is found and its out-of-sample
  Sharpe ratio ranked among all N: relative rank ``w = rank / (N + 1)`` (rank 1 the worst, ties
  averaged), logit ``log(w / (1 - w))``. PBO is the share of splits whose logit is at most 0: the
  in-sample best landed in the bottom half out of sample.

Each backtest of a sweep reports its returns' ``Moments`` (sums per block and over the whole
run), a few dozen numbers instead of the whole curve, so the measures cost almost nothing on top
of the sweep, and a Dask worker sends no more than before. ``deflated_sharpe`` and
``backtest_overfitting`` take these; ``dsr_from_returns`` and ``pbo_from_returns`` take plain
arrays (the tests and other callers).

Interface for reports and the web research page: ``Overfitting.as_dict()`` is the JSON object
``overfitting`` of ``--json`` (``deflated_sharpe`` with its inputs, ``pbo`` with its splits,
and ``meaning``: one plain sentence per measure); ``Overfitting.lines()`` the text report's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from types import SimpleNamespace
from typing import Any

import numpy as np

EULER_GAMMA = 0.5772156649015329
BLOCKS = 16  # S, the paper's suggestion
SIGNIFICANT = 0.95  # a DSR at or above this: the Sharpe ratio is unlikely to be luck
# What each measure means, in one plain sentence without figures (a walk-forward report shows
# one value per window; the ``meaning`` properties below say it with the figures of one sweep).
DSR_SENTENCE = (
    "the probability that the chosen combination's true Sharpe ratio beats the best that as many "
    "combinations with no skill would show by luck (0.95 or more: unlikely to be luck)"
)
PBO_SENTENCE = (
    "how often the combination best on one half of the bars it was chosen on ranked in the bottom half "
    "on the other half, over every way to cut them into two (0.5 or more: the choice is no better than chance)"
)
_SPLITS_AT_ONCE = 256  # halves evaluated per step of backtest_overfitting (its arrays stay in cache)


# --- what each backtest reports -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Moments:
    """Sums of one backtest's per-bar returns and of their squares over each of S equal blocks
    (``block_size`` returns each) and over the ``count mod S`` returns before them (``head_*``):
    what the CSCV needs, and each combination's Sharpe ratio for the DSR's trial variance."""

    count: int
    head_sum: float
    head_squares: float
    block_size: int
    block_sums: tuple[float, ...]
    block_squares: tuple[float, ...]

    @property
    def sharpe(self) -> float:
        """Mean over standard deviation (ddof 1), per bar; 0 when the returns do not vary."""
        total = self.head_sum + math.fsum(self.block_sums)
        squares = self.head_squares + math.fsum(self.block_squares)
        return _sharpe(self.count, total, squares)


def moments(returns: np.ndarray, blocks: int = BLOCKS) -> Moments:
    """``Moments`` of ``returns`` (non-finite values count as 0, so every backtest of a sweep has
    the same number of returns and the blocks line up). numpy's own sums (pairwise, in a fixed
    order), so a Dask worker gives the bits a local process gives."""
    r = np.ascontiguousarray(returns, dtype=np.float64)
    if not np.isfinite(r).all():
        r = np.where(np.isfinite(r), r, 0.0)
    n = len(r)
    size = n // blocks
    head = n - size * blocks
    squared = np.square(r)
    if size:
        sums = r[head:].reshape(blocks, size).sum(axis=1)
        squares = squared[head:].reshape(blocks, size).sum(axis=1)
    else:
        sums = squares = np.zeros(blocks)
    return Moments(
        count=n,
        head_sum=float(r[:head].sum()),
        head_squares=float(squared[:head].sum()),
        block_size=size,
        block_sums=tuple(sums.tolist()),
        block_squares=tuple(squares.tolist()),
    )


def moments_of_run(equity: np.ndarray, returns: np.ndarray | None = None, blocks: int = BLOCKS) -> Moments:
    """``moments`` of an equity curve's per-bar returns; ``returns`` is ``metrics.returns(equity)``
    when the caller has it (that drops non-finite returns, which only a curve through 0 has:
    then they are recomputed here, counted as 0, so that every run keeps one return a bar)."""
    return moments(_returns(equity, returns), blocks)


def _returns(equity: np.ndarray, returns: np.ndarray | None) -> np.ndarray:
    equity = np.asarray(equity, dtype=np.float64)
    if returns is not None and len(returns) == max(len(equity) - 1, 0):
        return returns
    if len(equity) < 2:
        return np.empty(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.diff(equity) / equity[:-1]
    return np.where(np.isfinite(out), out, 0.0)


def _sharpe(n: float, total: float, squares: float) -> float:
    if n < 2:
        return 0.0
    mean = total / n
    var = (squares - n * mean * mean) / (n - 1)
    if not var > squares * 1e-12 / n:  # no variation (a combination that never traded), or rounding
        return 0.0
    return mean / math.sqrt(var)


@dataclass(frozen=True, slots=True)
class Shape:
    """The chosen combination's returns as the DSR reads them."""

    count: int
    sharpe: float  # per bar, ddof 1
    skewness: float  # population moments; NaN when the returns do not vary
    kurtosis: float  # 3 for a normal distribution


def shape(returns: np.ndarray) -> Shape:
    """Sharpe ratio per bar, skewness and kurtosis of ``returns`` (central moments, two passes)."""
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    if n < 2:
        return Shape(n, 0.0, math.nan, math.nan)
    mean = float(r.mean())
    d = r - mean
    d2 = d * d
    m2 = float(d2.mean())
    m3 = float((d2 * d).mean())
    m4 = float((d2 * d2).mean())
    sd = math.sqrt(m2 * n / (n - 1))
    if not m2 > 0:
        return Shape(n, 0.0, math.nan, math.nan)
    return Shape(n, mean / sd, m3 / m2**1.5, m4 / (m2 * m2))


def shape_of_run(equity: np.ndarray, returns: np.ndarray | None = None) -> Shape:
    """``shape`` of an equity curve's per-bar returns (non-finite ones as 0, as ``moments_of_run``)."""
    return shape(_returns(equity, returns))


# --- the Deflated Sharpe Ratio ---------------------------------------------------------------


def expected_max_sharpe(trials: int, variance: float) -> float:
    """SR0: the expected largest Sharpe ratio of ``trials`` combinations without skill whose
    Sharpe ratios vary with ``variance`` (0 for one trial: nothing was selected)."""
    if trials <= 1 or not variance > 0:
        return 0.0
    q1 = _normal().inv_cdf(1.0 - 1.0 / trials)
    q2 = _normal().inv_cdf(1.0 - 1.0 / (trials * math.e))
    return math.sqrt(variance) * ((1.0 - EULER_GAMMA) * q1 + EULER_GAMMA * q2)


def probabilistic_sharpe(
    sharpe: float, benchmark: float, count: int, skewness: float, kurtosis: float
) -> float:
    """PSR: the probability that the true Sharpe ratio exceeds ``benchmark``, from a Sharpe ratio
    per bar estimated on ``count`` returns with that skewness and (non-excess) kurtosis."""
    if count < 2 or not all(map(math.isfinite, (sharpe, benchmark, skewness, kurtosis))):
        return math.nan
    spread = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if not spread > 0:
        return math.nan
    return _normal().cdf((sharpe - benchmark) * math.sqrt(count - 1) / math.sqrt(spread))


@dataclass(frozen=True, slots=True)
class DeflatedSharpe:
    """The DSR and every input of its formula."""

    dsr: float  # NaN when undefined (returns that never vary)
    sharpe: float  # per bar, of the chosen combination
    trials: int  # N
    trials_sharpe_variance: float  # V, per bar (NaN with one trial)
    expected_max_sharpe: float  # SR0, per bar
    observations: int  # T, returns
    skewness: float
    kurtosis: float  # 3 for a normal distribution
    periods_per_year: float  # only to show SR and SR0 annualised beside the per-bar figures

    def as_dict(self) -> dict[str, Any]:
        root = math.sqrt(self.periods_per_year) if self.periods_per_year > 0 else math.nan
        return {
            "dsr": _finite(self.dsr),
            "sharpe_per_bar": _finite(self.sharpe),
            "sharpe_annualised": _finite(self.sharpe * root),
            "trials": self.trials,
            "trials_sharpe_variance_per_bar": _finite(self.trials_sharpe_variance),
            "expected_max_sharpe_per_bar": _finite(self.expected_max_sharpe),
            "expected_max_sharpe_annualised": _finite(self.expected_max_sharpe * root),
            "observations": self.observations,
            "skewness": _finite(self.skewness),
            "kurtosis": _finite(self.kurtosis),
        }

    @property
    def meaning(self) -> str:
        if not math.isfinite(self.dsr):
            return "Deflated Sharpe ratio: n/a (the chosen combination's returns never vary)."
        against = (
            "above zero"
            if self.trials == 1
            else f"above the best that {self.trials:,} combinations with no skill would show by luck"
        )
        return (
            f"Deflated Sharpe ratio {self.dsr:.2f}: the probability that the chosen combination's true "
            f"Sharpe ratio is {against}, given its returns' length, skew and fat tails "
            f"({SIGNIFICANT:.2f} or more: unlikely to be luck)."
        )


def deflated_sharpe(chosen: Shape, trial_sharpes: Sequence[float], periods_per_year: float) -> DeflatedSharpe:
    """The DSR of the combination whose returns have ``chosen``'s shape, picked among combinations
    whose Sharpe ratios per bar are ``trial_sharpes`` (the chosen one's among them)."""
    trials = len(trial_sharpes)
    values = np.asarray(trial_sharpes, dtype=np.float64)
    variance = float(np.var(values, ddof=1)) if trials > 1 else math.nan
    sr0 = expected_max_sharpe(trials, variance)
    sharpe, skew, kurt = chosen.sharpe, chosen.skewness, chosen.kurtosis
    dsr = probabilistic_sharpe(sharpe, sr0, chosen.count, skew, kurt)
    return DeflatedSharpe(dsr, sharpe, trials, variance, sr0, chosen.count, skew, kurt, periods_per_year)


def dsr_from_returns(chosen: np.ndarray, trial_sharpes: Sequence[float]) -> float:
    """``deflated_sharpe(...).dsr`` from the chosen combination's returns."""
    return deflated_sharpe(shape(chosen), trial_sharpes, 1.0).dsr


# --- the Probability of Backtest Overfitting ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class BacktestOverfitting:
    """PBO by CSCV and what it was computed from."""

    pbo: float  # NaN when it cannot be computed (``reason`` says why)
    trials: int  # N
    blocks: int  # S
    block_bars: int  # returns per block
    splits: int  # C(S, S/2)
    median_logit: float
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pbo": _finite(self.pbo),
            "trials": self.trials,
            "blocks": self.blocks,
            "block_bars": self.block_bars,
            "splits": self.splits,
            "median_logit": _finite(self.median_logit),
        }
        if self.reason:
            out["reason"] = self.reason
        return out

    @property
    def meaning(self) -> str:
        if not math.isfinite(self.pbo):
            return f"Probability of backtest overfitting: n/a ({self.reason})."
        return (
            f"Probability of backtest overfitting {self.pbo:.2f}: in {self.pbo:.0%} of the {self.splits:,} ways "
            f"to cut the history into two halves of {self.blocks // 2} blocks each, the combination best on one "
            "half ranked in the bottom half on the other (0.5 or more: the choice is no better than chance)."
        )


def backtest_overfitting(rows: Sequence[Moments], blocks: int = BLOCKS) -> BacktestOverfitting:
    """PBO of choosing the best by Sharpe ratio among ``rows`` (one per combination, all over the
    same bars, cut into the same ``blocks``).

    The splits come in pairs, a half and its complement, each the other's out-of-sample set, so
    the Sharpe ratios of C(S, S/2) / 2 halves serve both. Within one split every half holds the
    same number of returns n, and the Sharpe ratio is sqrt((n - 1) / n) * s / sqrt(n q - s^2) for
    a sum s and a sum of squares q: the ranking uses s / sqrt(n q - s^2), the common factor left
    out (a half without variation scores 0, as ``metrics.sharpe`` does)."""
    n = len(rows)
    splits = math.comb(blocks, blocks // 2)
    size = rows[0].block_size if rows else 0

    def undefined(reason: str) -> BacktestOverfitting:
        return BacktestOverfitting(math.nan, n, blocks, size, splits, math.nan, reason)

    if not 2 <= blocks <= 24 or blocks % 2:
        raise ValueError(f"blocks must be even, from 2 to 24, not {blocks}")
    if n < 2:
        return undefined("one combination: nothing was chosen")
    if any(len(r.block_sums) != blocks or r.block_size != size for r in rows):
        raise ValueError("every combination's moments must have the same blocks")
    if size < 2:
        return undefined(f"{rows[0].count:,} returns are too few for {blocks} blocks of 2 or more")
    sums = np.array([r.block_sums for r in rows])  # (N, S)
    squares = np.array([r.block_squares for r in rows])
    per_half = blocks // 2 * size
    # The halves holding block 0, as bit masks; each one's complement is the other of its pair.
    others = np.array(list(combinations(range(1, blocks), blocks // 2 - 1)), dtype=np.int64)
    masks = 1 + (np.left_shift(1, others).sum(axis=1) if others.size else np.zeros(1, dtype=np.int64))
    halves = len(masks)
    # A half's sums are a subset of the first S/2 blocks' plus a subset of the others': every
    # subset's sums are worked out once (2 x 2^(S/2) rows), then each half is two rows added.
    low = blocks // 2
    low_sums, high_sums = _subset_sums(sums[:, :low]), _subset_sums(sums[:, low:])
    low_squares, high_squares = _subset_sums(squares[:, :low]), _subset_sums(squares[:, low:])
    logits = np.empty(2 * halves)
    work = _Work(min(_SPLITS_AT_ONCE, halves), n)  # buffers reused chunk after chunk
    everything = (1 << blocks) - 1
    for start in range(0, halves, _SPLITS_AT_ONCE):
        chunk = masks[start : start + _SPLITS_AT_ONCE]
        k = len(chunk)
        w = work.rows(k)
        for mask, score in ((chunk, w.first), (everything ^ chunk, w.second)):
            lo, hi = mask & ((1 << low) - 1), mask >> low
            np.take(low_sums, lo, axis=0, out=w.sums)
            w.sums += np.take(high_sums, hi, axis=0, out=w.spare)
            np.take(low_squares, lo, axis=0, out=w.squares)
            w.squares += np.take(high_squares, hi, axis=0, out=w.spare)
            _scores(per_half, w.sums, w.squares, score, w.spare)
        logits[2 * start : 2 * start + k] = _logits(w.first, w.second, n)
        logits[2 * start + k : 2 * start + 2 * k] = _logits(w.second, w.first, n)
    pbo = float(np.count_nonzero(logits <= 0)) / len(logits)
    return BacktestOverfitting(pbo, n, blocks, size, splits, float(np.median(logits)))


def _subset_sums(values: np.ndarray) -> np.ndarray:
    """(N, g) -> (2^g, N): row ``m`` is the sum of the columns whose bits are set in ``m``."""
    n, g = values.shape
    out = np.zeros((1 << g, n))
    columns = np.ascontiguousarray(values.T)
    for mask in range(1, 1 << g):
        lowest = mask & -mask
        np.add(out[mask ^ lowest], columns[lowest.bit_length() - 1], out=out[mask])
    return out


class _Work:
    """The (halves, N) arrays one chunk of ``backtest_overfitting`` needs, allocated once."""

    names = ("sums", "squares", "first", "second", "spare")

    def __init__(self, halves: int, n: int) -> None:
        self.buffers = {name: np.empty((halves, n)) for name in self.names}

    def rows(self, k: int) -> Any:
        return SimpleNamespace(**{name: b[:k] for name, b in self.buffers.items()})


def _scores(n: int, sums: np.ndarray, squares: np.ndarray, out: np.ndarray, spread: np.ndarray) -> None:
    """Sharpe ratios of halves of ``n`` returns, up to their common positive factor, into ``out``
    (``spread`` is scratch space)."""
    np.multiply(sums, sums, out=spread)
    np.multiply(squares, float(n), out=out)
    np.subtract(out, spread, out=spread)  # n q - s^2
    np.multiply(squares, (n - 1) * 1e-12, out=out)
    enough = spread > out  # as ``_sharpe``: no variation scores 0
    np.sqrt(spread, out=spread, where=enough)
    out.fill(0.0)
    np.divide(sums, spread, out=out, where=enough)


def _logits(train: np.ndarray, test: np.ndarray, n: int) -> np.ndarray:
    """For each split (a row): the in-sample best (the first of equals, as the sweep ranks), its
    out-of-sample rank among all (1 the worst, ties sharing the average), logit of rank / (N+1)."""
    best = np.argmax(train, axis=1)
    mine = test[np.arange(len(test)), best][:, None]
    below = np.count_nonzero(test < mine, axis=1)
    equal = np.count_nonzero(test == mine, axis=1)  # itself included
    w = (below + (equal + 1) / 2.0) / (n + 1)
    return np.log(w / (1.0 - w))


def pbo_from_returns(matrix: np.ndarray, blocks: int = BLOCKS) -> float:
    """PBO of a (T returns, N combinations) matrix."""
    columns = np.asarray(matrix, dtype=np.float64)
    return backtest_overfitting([moments(columns[:, k], blocks) for k in range(columns.shape[1])], blocks).pbo


# --- both, for a report ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overfitting:
    """What a report shows about a sweep's choice."""

    deflated: DeflatedSharpe
    pbo: BacktestOverfitting

    def as_dict(self) -> dict[str, Any]:
        return {
            "deflated_sharpe": self.deflated.as_dict(),
            "pbo": self.pbo.as_dict(),
            "meaning": {"deflated_sharpe": self.deflated.meaning, "pbo": self.pbo.meaning},
        }

    def lines(self) -> list[str]:
        d = self.deflated
        root = math.sqrt(d.periods_per_year) if d.periods_per_year > 0 else math.nan
        inputs = (
            f"  inputs: Sharpe {_num(d.sharpe * root)} a year ({_num(d.sharpe, 4)} a bar), {d.trials:,} "
            f"combinations tried, variance of their Sharpe ratios {_num(d.trials_sharpe_variance, 3, sci=True)} "
            f"a bar, expected best without skill {_num(d.expected_max_sharpe * root)} a year, "
            f"{d.observations:,} returns, skewness {_num(d.skewness)}, kurtosis {_num(d.kurtosis)}"
        )
        return [d.meaning, inputs, self.pbo.meaning]

    def table(self) -> tuple[str, list[str], list[list[str]]]:
        """A table for the HTML report (``bot.web.report``): each measure, its value, what it means."""
        d, p = self.deflated, self.pbo
        root = math.sqrt(d.periods_per_year) if d.periods_per_year > 0 else math.nan
        rows = [
            ["Deflated Sharpe ratio", _num(d.dsr), d.meaning],
            [
                "  Sharpe ratio of the choice",
                _num(d.sharpe * root),
                "a year (per bar: " + _num(d.sharpe, 4) + ")",
            ],
            ["  combinations tried (N)", f"{d.trials:,}", "every one counts, the bad ones too"],
            ["  variance of their Sharpe ratios", _num(d.trials_sharpe_variance, 3, sci=True), "per bar"],
            ["  expected best without skill (SR0)", _num(d.expected_max_sharpe * root), "a year"],
            ["  returns (T)", f"{d.observations:,}", "one a bar"],
            [
                "  skewness, kurtosis",
                f"{_num(d.skewness)}, {_num(d.kurtosis)}",
                "a normal distribution: 0, 3",
            ],
            ["Probability of backtest overfitting", _num(p.pbo), p.meaning],
            ["  blocks (S), splits", f"{p.blocks}, {p.splits:,}", f"{p.block_bars:,} returns a block"],
        ]
        return ("Overfitting", ["measure", "value", "what it means"], rows)


def overfitting(
    chosen: Shape, trials: Sequence[Moments], periods_per_year: float, blocks: int = BLOCKS
) -> Overfitting:
    """DSR of ``chosen`` among ``trials`` (every combination, the chosen one included) and PBO."""
    return Overfitting(
        deflated_sharpe(chosen, [t.sharpe for t in trials], periods_per_year),
        backtest_overfitting(trials, blocks),
    )


def _normal() -> Any:
    """The standard normal distribution (``statistics`` imported here: 7 ms no backtest needs)."""
    from statistics import NormalDist

    return NormalDist()


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _num(value: float, digits: int = 2, sci: bool = False) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}e}" if sci else f"{value:.{digits}f}"
