"""Checks ``tradebot backtest`` makes before the work starts, so that no run ends in a traceback.

``check_outputs``: every file the run will write (``--json``, ``--plot``, ``--sweep-csv``) can be
written: its folder exists, it is not a folder itself, it is not the input CSV, no two options
name the same file, and the file opens for writing (tried without changing an existing file).

``check_sizing``: a ``--fixed-qty`` position stays within what floating point can count on these
bars (``--fixed-qty 1e308`` would otherwise report an equity of ``nan``).

Each failure is a ``CheckError`` (a ``ValueError``) whose message is one line for the user.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from bot.bars import Bars


class CheckError(ValueError):
    """A run that cannot succeed; the message is one line for the user."""


def check_outputs(outputs: dict[str, str | None], csv_path: str | None = None) -> None:
    """``outputs`` maps each option (``--json``) to the path given, or None when not given."""
    seen: dict[str, str] = {}
    for option, value in outputs.items():
        if not value:
            continue
        path = Path(value)
        key = os.path.realpath(path)
        if key in seen:
            raise CheckError(f"{option} {value}: the same file as {seen[key]}; give each output its own name")
        seen[key] = f"{option} {value}"
        if csv_path and path.exists() and Path(csv_path).exists() and os.path.samefile(path, csv_path):
            raise CheckError(f"{option} {value}: that is the input CSV file, which would be overwritten")
        _check_writable(option, path)


def _check_writable(option: str, path: Path) -> None:
    where = f"{option} {path}"
    if path.is_dir():
        raise CheckError(f"{where}: is a directory; give a file name inside it")
    parent = path.parent
    if not parent.exists():
        raise CheckError(f"{where}: the directory {parent} does not exist")
    if not parent.is_dir():
        raise CheckError(f"{where}: {parent} is not a directory")
    existed = path.exists()
    try:
        with path.open("ab"):  # append mode: an existing file is neither truncated nor changed
            pass
    except OSError as exc:
        raise CheckError(f"{where}: cannot be written ({exc.strerror or exc})") from None
    if not existed:
        path.unlink(missing_ok=True)


def check_sizing(
    fixed_qty: float | None, cash: float, slippage: float, commission: float, bars: Bars
) -> None:
    """A fixed quantity whose positions, or the sums of their profits and losses over every bar,
    would overflow a float is refused, naming the quantity and the highest price."""
    if not fixed_qty or len(bars) == 0:
        return
    top = float(np.max(bars.high))
    with np.errstate(over="ignore"):
        cost = fixed_qty * top * (1.0 + slippage) * (1.0 + commission)
        # No trade can gain or lose more than twice a position's cost; there are fewer trades than bars.
        worst = cash + 2.0 * cost * len(bars)
    if not math.isfinite(worst):
        raise CheckError(
            f"--fixed-qty {fixed_qty:g}: positions at prices up to {top:,.6g} are too large to compute with; "
            "give a realistic quantity"
        )
