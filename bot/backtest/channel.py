"""What a running backtest tells a program that watches it: its stage, how many of its tasks are
done, and at the end its figures.

A person at a terminal reads tqdm bars on stderr (``--progress``); a program listens here. The
research worker behind the dashboard (``bot/research/worker.py``) is the listener: it forwards
each message as one JSON line to the process that started it. With no listener (a plain
``tradebot backtest``) every call is a no-op costing one list check.

Messages, plain JSON-ready dicts:

* ``{"stage": "reading history"}``: what the command is doing now;
* ``{"done": 12, "total": 64}``: sweep (or walk-forward) backtests finished so far;
* ``{"figures": {...}}``: the figures of the finished run (``kind`` backtest, sweep,
  walk_forward or portfolio; statistics, overfitting, the sweep's best rows, the walk-forward
  windows: what the JSON report holds, without the trades and the equity curve);
* ``{"error": "..."}``: the one line the command printed when it refused to go on.

Listeners run in the process that runs the command (a sweep reports as its results come back),
never in the pool's workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

Listener = Callable[[dict[str, Any]], None]
T = TypeVar("T")

_listeners: list[Listener] = []


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send every message to ``listener`` until the block ends."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def active() -> bool:
    return bool(_listeners)


def stage(label: str) -> None:
    _say({"stage": label})


def tasks(done: int, total: int) -> None:
    _say({"done": done, "total": total})


def figures(doc: dict[str, Any]) -> None:
    _say({"figures": doc})


def error(line: str) -> None:
    _say({"error": line})


def counted(items: Iterable[T], total: int) -> Iterable[T]:
    """``items`` unchanged, reporting ``tasks(k, total)`` as the k-th arrives (when listened to)."""
    if not _listeners:
        return items
    return _counting(items, total)


def _counting(items: Iterable[T], total: int) -> Iterator[T]:
    tasks(0, total)
    for done, item in enumerate(items, 1):
        yield item
        tasks(done, total)


def _say(message: dict[str, Any]) -> None:
    for listener in list(_listeners):
        listener(message)
