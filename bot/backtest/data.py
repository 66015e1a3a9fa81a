"""History for backtests: a CSV file, or bars from a ``BarSource`` cached on disk.

CSV files are read with pyarrow's multi-threaded reader (about 0.15 s per million rows; pandas
is not imported). Columns are matched in any letter case: a time column named ``timestamp``,
``date``, ``datetime`` or ``time``, then ``open``, ``high``, ``low``, ``close`` and optionally
``volume``; others are ignored. Times may be ISO 8601 (``2024-01-31``, ``2024-01-31 09:30:00``,
``2024-01-31T09:30:00Z``, with or without an offset; without one they are taken as UTC),
US style ``01/31/2024 09:30``, or epoch seconds, milliseconds, microseconds or nanoseconds.

Every problem is a ``DataInputError`` whose message is one line naming the file, the line
and the column. Refused before any work: input that is not CSV text (NUL bytes, no header line
in the first 64 KiB, not UTF-8), missing or empty values, prices that cannot be (zero or
negative, high below low, open or close outside the bar's range, negative volume: the same
rules the live engine applies to its bars), times that are not finite or lie outside the
years 1678 to 2261, and times out of order or repeated.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bot.bars import NS, Bars, Timeframe

TIME_NAMES = ("timestamp", "date", "datetime", "time")
PRICE_NAMES = ("open", "high", "low", "close")
STRING_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%Y%m%d",
)
_UNIT_NS = {"s": NS, "ms": 1_000_000, "us": 1_000, "ns": 1}
HEADER_LIMIT = 64 * 1024  # a header line longer than this is not a CSV file of bars
BLOCK_SIZE = 1 << 20  # pyarrow's read block: no line of bars comes near it
# The times int64 nanoseconds can hold, with a day to spare at each end.
FIRST_NS = -(2**63) + 86_400 * NS
LAST_NS = 2**63 - 1 - 86_400 * NS


class DataInputError(ValueError):
    """The history cannot be used; the message is one line for the user."""


def read_csv(path: str | Path) -> Bars:
    """Bars from a CSV file, checked: all values present, times parsed, sorted and unique."""
    path = Path(path)
    names = _header(path)
    columns = _pick_columns(path, names)
    table = _read_table(path, columns)
    if table.num_rows == 0:
        raise DataInputError(f"{path}: no rows of data")
    time_name = columns[0]
    for name in columns:
        _check_no_nulls(path, table, name)
    times = _times(path, table.column(time_name), time_name)
    values = [np.ascontiguousarray(_floats(table.column(name))) for name in columns[1:]]
    for name, array in zip(columns[1:], values, strict=True):
        bad = ~np.isfinite(array)
        if bad.any():
            raise DataInputError(f"{path} line {int(bad.argmax()) + 2}: {name} is not a finite number")
    if len(values) == 4:
        values.append(np.zeros(len(times)))
    bars = Bars(times, *values)
    check_prices(bars, str(path))
    check_order(bars, str(path))
    return bars


def check_prices(bars: Bars, where: str, lines: bool = True) -> None:
    """Prices a market cannot print, refused with the first offending row and how many there are.

    The same rules as the live engine's ``validate_bars``: every price above zero, high not
    below low, open and close within [low, high], volume not negative. ``lines``: name CSV
    lines (the header is line 1); otherwise name the bar's time.
    """
    o, h, lo, c, v = bars.open, bars.high, bars.low, bars.close, bars.volume
    rules = (
        (o <= 0, "open is {o:g}; prices must be above zero"),
        (h <= 0, "high is {h:g}; prices must be above zero"),
        (lo <= 0, "low is {lo:g}; prices must be above zero"),
        (c <= 0, "close is {c:g}; prices must be above zero"),
        (h < lo, "high {h:g} is below low {lo:g}"),
        (o > h, "open {o:g} is above high {h:g}"),
        (o < lo, "open {o:g} is below low {lo:g}"),
        (c > h, "close {c:g} is above high {h:g}"),
        (c < lo, "close {c:g} is below low {lo:g}"),
        (v < 0, "volume is {v:g}; it cannot be negative"),
    )
    for mask, message in rules:
        if mask.any():
            i = int(mask.argmax())
            count = int(np.count_nonzero(mask))
            rows = f" ({count:,} of {len(mask):,} rows)" if count > 1 else ""
            place = f"{where} line {i + 2}" if lines else f"{where} bar at {_iso(bars.time[i])}"
            text = message.format(o=o[i], h=h[i], lo=lo[i], c=c[i], v=v[i])
            raise DataInputError(f"{place}: {text}{rows}")


def check_order(bars: Bars, where: str) -> None:
    """Times must increase strictly: no row out of order, no duplicate."""
    if len(bars) == 0:
        raise DataInputError(f"{where}: no rows of data")
    step = np.diff(bars.time)
    if (step <= 0).any():
        i = int((step <= 0).argmax()) + 1
        when, before = _iso(bars.time[i]), _iso(bars.time[i - 1])
        if step[i - 1] == 0:
            raise DataInputError(f"{where} line {i + 2}: duplicate timestamp {when}")
        raise DataInputError(
            f"{where} line {i + 2}: timestamp {when} is earlier than the line before ({before}); "
            "rows must be sorted oldest first"
        )


def infer_timeframe(bars: Bars) -> Timeframe | None:
    """The most common spacing between bars, if it is a whole number of minutes."""
    if len(bars) < 2:
        return None
    steps, counts = np.unique(np.diff(bars.time[:100_001]), return_counts=True)
    seconds = int(steps[counts.argmax()] // NS)
    return Timeframe(seconds) if seconds > 0 and seconds % 60 == 0 else None


def resample(bars: Bars, timeframe: Timeframe) -> Bars:
    """Aggregate bars into ``timeframe`` buckets aligned to the epoch (first open, max high, ...)."""
    bucket = bars.time // (timeframe.seconds * NS)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(bars)] - 1
    return Bars(
        bucket[starts] * timeframe.seconds * NS,
        bars.open[starts],
        np.maximum.reduceat(bars.high, starts),
        np.minimum.reduceat(bars.low, starts),
        bars.close[ends],
        np.add.reduceat(bars.volume, starts),
    )


# --- CSV internals ---------------------------------------------------------------------------


def _header(path: Path) -> list[str]:
    """The header line, read from at most the first 64 KiB: a file of NUL bytes, a device such as
    /dev/zero or any other binary file is refused here, before anything big is read."""
    try:
        with path.open("rb") as handle:
            head = handle.read(HEADER_LIMIT)
    except FileNotFoundError:
        raise DataInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataInputError(f"{path}: is a directory, not a CSV file") from None
    except OSError as exc:
        raise DataInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"\0" in head:
        raise DataInputError(f"{path}: not CSV text (it contains NUL bytes)")
    first, newline, _ = head.partition(b"\n")
    if not newline and len(head) == HEADER_LIMIT:
        raise DataInputError(f"{path}: not CSV text (no line break in the first {HEADER_LIMIT // 1024} KiB)")
    try:
        text = first.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError:
        raise DataInputError(f"{path}: not CSV text (the header line is not UTF-8)") from None
    if not text.strip():
        raise DataInputError(f"{path}: empty file (expected a header line)")
    return next(csv.reader([text]))


def _pick_columns(path: Path, names: list[str]) -> list[str]:
    """The file's own names for [time, open, high, low, close, (volume)]."""
    found: dict[str, str] = {}
    for name in names:
        key = name.strip().lower()
        if key in found:
            raise DataInputError(f"{path}: column {key!r} appears twice in the header")
        found[key] = name
    time_name = next((found[k] for k in TIME_NAMES if k in found), None)
    missing = [k for k in PRICE_NAMES if k not in found]
    if time_name is None:
        missing.insert(0, "timestamp (or date)")
    if missing:
        have = ", ".join(n.strip() for n in names) or "none"
        raise DataInputError(f"{path}: missing column {', '.join(missing)} (header has: {have})")
    picked = [time_name, *(found[k] for k in PRICE_NAMES)]
    if "volume" in found:
        picked.append(found["volume"])
    return picked


def _read_table(path: Path, columns: list[str]):  # type: ignore[no-untyped-def]
    import pyarrow as pa
    from pyarrow import csv as pacsv

    convert = pacsv.ConvertOptions(
        include_columns=columns, column_types={name: pa.float64() for name in columns[1:]}
    )
    try:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True, block_size=BLOCK_SIZE),
            convert_options=convert,
        )
    except pa.ArrowInvalid as exc:
        raise DataInputError(_explain(path, str(exc), columns)) from None


def _explain(path: Path, message: str, columns: list[str]) -> str:
    """Turn pyarrow's error into a line that names the line and column."""
    match = re.search(r"CSV column #(\d+): CSV conversion error to double: invalid value '(.*)'", message)
    if match:
        names = _header(path)
        name = names[int(match.group(1))]
        value = match.group(2)
        line = _find_line(path, name, value)
        where = f"{path} line {line}" if line else str(path)
        return f"{where}: {name.strip().lower()} has {value!r}, which is not a number"
    if "straddling object" in message:  # one "line" longer than a whole block: binary data
        return f"{path}: not CSV text (a line longer than {BLOCK_SIZE // 2**20} MiB; binary data?)"
    first = message.strip().splitlines()[0] if message.strip() else "unreadable"
    return f"{path}: not a readable CSV file: {first}"


def _find_line(path: Path, name: str, value: str) -> int | None:
    import pyarrow as pa
    from pyarrow import csv as pacsv

    table = pacsv.read_csv(
        path, convert_options=pacsv.ConvertOptions(include_columns=[name], column_types={name: pa.string()})
    )
    for i, cell in enumerate(table.column(0).to_pylist()):
        if cell == value:
            return i + 2
    return None


def _check_no_nulls(path: Path, table, name: str) -> None:  # type: ignore[no-untyped-def]
    column = table.column(name)
    if column.null_count:
        import pyarrow.compute as pc

        first = int(np.asarray(pc.is_null(column)).argmax())
        raise DataInputError(f"{path} line {first + 2}: {name.strip().lower()} is empty or NaN")


def _floats(column) -> np.ndarray:  # type: ignore[no-untyped-def]
    return _concat(column, np.float64)


def _concat(column, dtype) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A null-free chunked column of 8-byte values as one numpy array, read from the buffers
    directly (pyarrow's ``to_numpy`` would import pandas, which costs 0.5 s)."""
    parts = [
        np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * 8)
        for chunk in column.chunks
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _times(path: Path, column, name: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Any supported time column as int64 ns since the epoch, UTC."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_timestamp(kind):
        return _scaled(path, name, column, _int64(column), _UNIT_NS[kind.unit])
    if pa.types.is_date32(kind):
        return _scaled(path, name, column, _int64(column.cast(pa.int32()).cast(pa.int64())), 86_400 * NS)
    if pa.types.is_integer(kind):
        values = _int64(column.cast(pa.int64()))
        return _scaled(path, name, column, values, _epoch_unit(values))
    if pa.types.is_floating(kind):
        return _float_epoch(path, name, _floats(column))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _parse_strings(path, column, name)
    raise DataInputError(f"{path}: column {name!r} has {kind} values, not dates")


def _int64(column) -> np.ndarray:  # type: ignore[no-untyped-def]
    return _concat(column, np.int64)


def _epoch_unit(values: np.ndarray) -> int:
    """Nanoseconds per unit of epoch numbers, guessed from the size of the first value:
    seconds below 1e11, milliseconds below 1e14, microseconds below 1e17, else nanoseconds."""
    first = abs(float(values[0])) if len(values) else 0.0
    for limit, unit in ((1e11, "s"), (1e14, "ms"), (1e17, "us")):
        if first < limit:
            return _UNIT_NS[unit]
    return 1


def _scaled(path: Path, name: str, column, values: np.ndarray, factor: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """``values * factor`` as int64 ns, refusing any value that would overflow (numpy would wrap)."""
    bad = (values < FIRST_NS // factor) | (values > LAST_NS // factor)
    if bad.any():
        i = int(bad.argmax())
        _out_of_range(path, name, i, column[i].as_py())
    return values * factor


def _float_epoch(path: Path, name: str, values: np.ndarray) -> np.ndarray:
    """Epoch numbers written as decimals (``1704067200.5``, ``1e30``, ``inf``) as int64 ns."""
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(bad.argmax())
        raise DataInputError(
            f"{path} line {i + 2}: {name.strip().lower()} {float(values[i])!r} is not a time (not a finite number)"
        )
    ns = values * _epoch_unit(values)
    bad = (ns < FIRST_NS) | (ns > LAST_NS)
    if bad.any():
        i = int(bad.argmax())
        _out_of_range(path, name, i, float(values[i]))
    return np.round(ns).astype(np.int64)


def _out_of_range(path: Path, name: str, i: int, value: object) -> None:
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    raise DataInputError(
        f"{path} line {i + 2}: {name.strip().lower()} {shown} is outside the times this program handles "
        "(the years 1678 to 2261; epoch numbers in s, ms, us or ns)"
    )


def _parse_strings(path: Path, column, name: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    import pyarrow.compute as pc

    best: tuple[int, int] | None = None  # (parsed count, first failure)
    for fmt in STRING_FORMATS:
        parsed = pc.strptime(column, format=fmt, unit="ns", error_is_null=True)
        if parsed.null_count == 0:
            return _int64(parsed)
        ok = len(parsed) - parsed.null_count
        if best is None or ok > best[0]:
            best = (ok, int(np.asarray(pc.is_null(parsed)).argmax()))
    first_bad = best[1] if best else 0
    value = column[first_bad].as_py()
    raise DataInputError(
        f"{path} line {first_bad + 2}: {name.strip().lower()} {value!r} is not a date "
        "(use ISO 8601 like 2024-01-31 or 2024-01-31T09:30:00Z, or epoch seconds)"
    )


def _iso(ns: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(ns) // 1000)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
