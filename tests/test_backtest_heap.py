"""bot.backtest.heap: a sweep worker keeps freed arrays' memory for the next backtest.

Counted in page faults (not time): six arrays of 3 MB allocated, filled and freed, twenty
times over, fault their pages in once when the memory is kept, every time when it is handed back.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from bot.backtest import sweep

PROBE = """
import resource, sys
import numpy as np
from bot.backtest.heap import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def backtest():  # a few window-long arrays alive at once, then all freed
    arrays = [np.ones(400_000) for _ in range(6)]
    del arrays
backtest()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    backtest()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's"
)


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


@glibc_only
def test_freed_arrays_are_reused_without_faulting_their_pages_in_again():
    kept, faults = _faults("keep")
    assert kept == "True"
    assert faults < 500  # 20 x 6 x 3.2 MB would be ~94,000 pages


@glibc_only
def test_by_default_glibc_hands_the_memory_back():
    """The control: without the thresholds the same loop faults every array in (what the
    sweep workers paid before)."""
    kept, faults = _faults("default")
    assert kept == "False"
    assert faults > 50_000


def test_sweep_workers_keep_their_memory(monkeypatch):
    calls = []
    monkeypatch.setattr("bot.backtest.heap.keep_freed_memory", lambda: calls.append("heap") or True)
    # Not this test process's own death signal and SIGINT (tests/test_sweep_workers.py kills real workers).
    monkeypatch.setattr("bot.backtest.orphans.die_with_parent", lambda parent: calls.append(parent))
    sweep._init_worker(None, None, 4242)  # type: ignore[arg-type]
    assert calls == [4242, "heap"]
    sweep._WORKER.clear()
