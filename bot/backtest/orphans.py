"""A sweep's worker processes die with the process that started them, however it ends.

A SIGTERM or SIGKILL to ``tradebot backtest`` ends it at once, with no chance to stop its pool:
its workers went on computing their chunk of the sweep, at full CPU with no parent, for minutes
(issue 19). Each worker calls ``die_with_parent`` first:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker the moment the
  thread that started it ends (the pool starts its workers from the caller's thread, which the
  sweep keeps busy until its last result);
- everywhere, a watchdog thread that ends the worker when its parent is no longer its parent
  (checked every ``WATCH_SECONDS``), in case the kernel has no such call or the parent was gone
  before the call was made.

Workers also ignore SIGINT: Ctrl-C at a terminal reaches the whole process group, and the parent
alone decides (``sweep.run_tasks`` kills its workers and the command says one line).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

WATCH_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """Make this process end when ``parent`` (its parent's pid) does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        _pdeathsig()
    if os.getppid() != parent:  # the parent ended before the kernel was told: end now
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="parent-watchdog", daemon=True).start()


def _pdeathsig() -> None:
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl in this libc: the watchdog alone
        pass


def _watch(parent: int) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if os.getppid() != parent:
            os._exit(1)
