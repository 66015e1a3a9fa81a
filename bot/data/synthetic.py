"""The synthetic market: a deterministic bar source that needs no keys and no network.

Each symbol's price is a pure function of (symbol, time). Nothing is simulated step by step
and nothing is stored, so two processes asking for the same window in the same minute get
identical bars, history never changes after the fact, and any point costs the same to compute
whether it lies in 1970 or next year.

How the path is built. The log-price is a sum of value-noise layers. Layer ``j`` has a
spacing of ``15 s x 4**j`` (15 s, 1 min, 4 min, ... about 182 days): at every multiple of its
spacing it takes a pseudo-random value in [-1, 1] from a stable integer hash (splitmix64) of
(symbol, layer, index), and between two such points it interpolates linearly. Each layer's
amplitude grows like the square root of its spacing, as a random walk's displacement does,
so the sum moves like a random walk from minutes to months (close in spirit to Lévy's
construction of Brownian motion from tent functions), while the largest layer keeps the
price within a band around the symbol's base price forever. The 15-second layer is the
per-bar noise that gives candles their wicks. Cost: O(layers) per point, no state.

Bars sample that path: open is the price at the bar's start, close the price at its end
(so each close is the next open), high and low the extremes over samples taken every 15 s
inside the bar. Those samples hit every kink of the piecewise-linear path, so for bars up to
15 minutes high and low are exact (a 5m bar's high is the highest of its 1m highs); longer
bars take 60 evenly spaced samples, which keeps a year of hourly bars fast. ``price_at``
reads the same path at any instant, so the simulated broker fills at prices that agree
with the bars.

Seeds come from ``blake2b`` of the symbol, never from Python's ``hash()``, which changes from
one process to the next.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime

import numpy as np

from bot.bars import Bars, Timeframe
from bot.domain import is_crypto

__all__ = ["SymbolProfile", "SyntheticMarket", "profile"]

_MS = 1_000
_NS_PER_MS = 1_000_000
_FINEST_MS = 15_000  # spacing of the finest noise layer, and of the samples inside a bar
_LAYERS = 11  # spacings 15 s x 4**j: 15 s ... 4**10 x 15 s, about 182 days
_SPACINGS_MS = tuple(_FINEST_MS * 4**j for j in range(_LAYERS))
# Amplitude of each layer relative to the 1-minute one: sqrt(spacing) for a random walk.
# The 15 s layer is boosted: its wicks widen the bars' range (true range ~ 1.2x the close-to-close
# volatility), which sets how often a Supertrend(10, 3) flips on 1-minute bars: every ~35 bars
# on average (median ~25), so the simulator at one bar per second trades within a minute. The
# slowest layer is damped: it only needs to wander slowly around the base price.
_WEIGHTS = tuple(math.sqrt(s / 60_000) for s in _SPACINGS_MS)
_WEIGHTS = (_WEIGHTS[0] * 1.6, *_WEIGHTS[1:-1], _WEIGHTS[-1] * 0.5)
_MAX_SAMPLES_PER_BAR = 60
_CHUNK_SAMPLES = 1 << 18  # bounds temporary memory for long windows

# Well-known names get a familiar price level; every other symbol gets one from its hash.
_BASE_PRICES = {
    "BTC/USD": 60_000.0,
    "ETH/USD": 3_000.0,
    "SOL/USD": 150.0,
    "LTC/USD": 80.0,
    "DOGE/USD": 0.15,
    "AAPL": 190.0,
    "MSFT": 420.0,
    "SPY": 520.0,
    "QQQ": 440.0,
    "NVDA": 120.0,
    "TSLA": 200.0,
    "AMZN": 180.0,
    "GOOGL": 170.0,
    "META": 480.0,
}

_M64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(n) for n in (30, 27, 31, 11))
_UNIT = 2.0**-53


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, vectorised over a uint64 array (wrap-around arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ (x >> _S30)) * _MUL1
    x = (x ^ (x >> _S27)) * _MUL2
    return x ^ (x >> _S31)


def _mix_int(x: int) -> int:
    """splitmix64 on one Python int, for deriving per-layer seeds."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _unit(hashed: np.ndarray) -> np.ndarray:
    """uint64 hashes -> floats uniform in [0, 1)."""
    return (hashed >> _S11).astype(np.float64) * _UNIT


class SymbolProfile:
    """What makes one symbol's market its own: its seed, price level, volatility and volume."""

    __slots__ = (
        "base_price",
        "base_volume",
        "int_seeds",
        "layer_seeds",
        "log_level",
        "seed",
        "sigma",
        "symbol",
    )

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        digest = hashlib.blake2b(symbol.strip().upper().encode(), digest_size=8, person=b"tradebot")
        self.seed = int.from_bytes(digest.digest(), "little")
        u1, u2, u3 = (_mix_int(self.seed ^ tag) / 2.0**64 for tag in (0x51, 0x52, 0x53))
        crypto = is_crypto(symbol)
        default_base = math.exp(math.log(5) + u1 * math.log(200 / 5)) if crypto else 20 * 25**u1
        self.base_price = _BASE_PRICES.get(symbol.strip().upper(), default_base)
        # Scale of the log-price moves; the measured volatility per 1m bar is about 1.2x this:
        # ~0.09-0.15 % for stocks, ~0.15-0.25 % for crypto.
        self.sigma = (0.0012 + 0.0008 * u2) if crypto else (0.0007 + 0.0005 * u2)
        # Units traded per minute: about $50k-$500k of notional.
        self.base_volume = 50_000 * 10**u3 / self.base_price
        self.layer_seeds = np.array(
            [_mix_int(self.seed ^ (0x1000 + j)) for j in range(_LAYERS + 1)], dtype=np.uint64
        )
        self.int_seeds = tuple(int(seed) for seed in self.layer_seeds)
        # np.log, not math.log: the level _log_path adds, to the bit.
        self.log_level = np.log(np.array([[self.base_price]]))[0, 0]


_PROFILES: dict[str, SymbolProfile] = {}


def profile(symbol: str) -> SymbolProfile:
    """The (cached) profile of ``symbol``."""
    found = _PROFILES.get(symbol)
    if found is None:
        if len(_PROFILES) > 10_000:
            _PROFILES.clear()
        found = _PROFILES[symbol] = SymbolProfile(symbol)
    return found


def _log_path(profiles: list[SymbolProfile], times_ms: np.ndarray) -> np.ndarray:
    """Log-price of every symbol at every time (int64 ms since the epoch): shape (symbols, times)."""
    noise = np.zeros((len(profiles), len(times_ms)))
    if not len(times_ms):
        return noise
    seeds = np.stack([p.layer_seeds for p in profiles])  # (symbols, layers + 1)
    for layer, (spacing, weight) in enumerate(zip(_SPACINGS_MS, _WEIGHTS, strict=True)):
        index, offset = np.divmod(times_ms, spacing)
        seed = seeds[:, layer : layer + 1]
        first, last = int(index.min()), int(index.max())
        if last - first < 2 * len(times_ms):  # dense: hash each grid point once, then look up
            grid = np.arange(first, last + 2, dtype=np.int64).view(np.uint64)
            values = _unit(_splitmix64(seed + grid)) * (2 * weight) - weight
            at = index - first
            left, right = values[:, at], values[:, at + 1]
        else:  # sparse samples (long bars): hash just the two grid points around each sample
            at = index.view(np.uint64)
            left = _unit(_splitmix64(seed + at)) * (2 * weight) - weight
            right = _unit(_splitmix64(seed + (at + np.uint64(1)))) * (2 * weight) - weight
        noise += left + (right - left) * (offset * (1.0 / spacing))
    sigma = np.array([[p.sigma] for p in profiles])
    level = np.log([[p.base_price] for p in profiles])
    return level + sigma * noise


def _price_point(p: SymbolProfile, time_ms: int) -> float:
    """``exp(_log_path([p], [time_ms]))`` for one point, in plain Python, bit for bit."""
    noise = 0.0
    for layer, (spacing, weight) in enumerate(zip(_SPACINGS_MS, _WEIGHTS, strict=True)):
        index, offset = divmod(time_ms, spacing)
        seed = p.int_seeds[layer]
        left = ((_mix_int((seed + index) & _M64) >> 11) * _UNIT) * (2 * weight) - weight
        right = ((_mix_int((seed + index + 1) & _M64) >> 11) * _UNIT) * (2 * weight) - weight
        noise += left + (right - left) * (offset * (1.0 / spacing))
    return float(np.exp(p.log_level + p.sigma * noise))


def _to_ms(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _MS + delta.microseconds // 1_000


class SyntheticMarket:
    """A bar source for any symbol and timeframe, computed on demand (see the module docstring).

    Bars are aligned to the timeframe (every bar starts at a multiple of ``timeframe.seconds``
    since the epoch) and run around the clock, weekends included. Naive datetimes are read as UTC.
    """

    name = "synthetic"

    def fetch(
        self, symbols: list[str], timeframe: Timeframe, start: datetime, end: datetime
    ) -> dict[str, Bars]:
        """Bars with ``start <= bar start < end`` for every symbol (none is ever missing)."""
        tf_ms = timeframe.seconds * _MS
        first = -(-_to_ms(start) // tf_ms) * tf_ms  # ceil to the timeframe
        count = max(0, -(-(_to_ms(end) - first) // tf_ms))
        symbols = list(dict.fromkeys(symbols))
        if not count or not symbols:
            return {}
        profiles = [profile(s) for s in symbols]
        per_bar = min(max(1, tf_ms // _FINEST_MS), _MAX_SAMPLES_PER_BAR)
        step = tf_ms // per_bar if tf_ms % per_bar == 0 else tf_ms / per_bar
        chunk = max(1, _CHUNK_SAMPLES // (per_bar * len(symbols)))
        parts = []
        for lo in range(0, count, chunk):
            n = min(chunk, count - lo)
            offsets = np.rint(np.arange(n * per_bar + 1) * step).astype(np.int64)
            times = first + lo * tf_ms + offsets
            path = _log_path(profiles, times)
            parts.append(_bars_from_path(profiles, path, times[:-1:per_bar], per_bar, timeframe))
        out = {}
        for i, symbol in enumerate(symbols):
            columns = [np.concatenate([part[k][i] for part in parts]) for k in range(6)]
            out[symbol] = Bars(*columns)
        return out

    def price_at(self, symbol: str, when: datetime) -> float:
        """The price of ``symbol`` at the instant ``when``: a bar's open is its value at the bar start.

        The broker marks every position with it, several times a cycle and on every page of the
        dashboard, so one point is computed in plain Python (the same integers and the same float
        operations in the same order as ``_log_path``, hence the same bits: a test compares them)
        rather than through a dozen small numpy calls per layer, about ten times slower."""
        return _price_point(profile(symbol), _to_ms(when))


def _bars_from_path(
    profiles: list[SymbolProfile],
    path: np.ndarray,
    starts_ms: np.ndarray,
    per_bar: int,
    timeframe: Timeframe,
) -> tuple[np.ndarray, ...]:
    """(time, open, high, low, close, volume), each (symbols, bars), from a sampled log-path."""
    n_sym, n_bars = path.shape[0], len(starts_ms)
    prices = np.exp(path)
    open_ = prices[:, :-1:per_bar]
    close = prices[:, per_bar::per_bar]
    inner = prices[:, :-1].reshape(n_sym, n_bars, per_bar)
    high = np.maximum(inner.max(axis=2), close)
    low = np.minimum(inner.min(axis=2), close)
    # Volume: busier on big moves, with a per-bar random factor; a pure function of the bar too.
    minutes = timeframe.seconds / 60
    sigma = np.array([[p.sigma] for p in profiles])
    move = np.abs(path[:, per_bar::per_bar] - path[:, :-1:per_bar]) / (sigma * math.sqrt(minutes))
    bar_index = (starts_ms // (timeframe.seconds * _MS)).view(np.uint64)
    seeds = np.array([[p.layer_seeds[-1] ^ np.uint64(timeframe.seconds)] for p in profiles], np.uint64)
    jitter = 0.4 + 1.2 * _unit(_splitmix64(seeds + bar_index))
    base = np.array([[p.base_volume * minutes] for p in profiles])
    volume = np.round(base * jitter * (0.5 + 0.5 * np.minimum(move, 6.0)), 4) + 0.0001
    times = np.broadcast_to(starts_ms * _NS_PER_MS, (n_sym, n_bars))
    return times, open_, high, low, close, volume
