"""Reading a CSV file of bars into numpy columns, in bounded memory, every problem named by line.

The file is streamed with pyarrow's CSV reader in 256 KiB blocks (parsed on every core; pandas
is not imported): each block's prices are copied into arrays sized from the file's length, so a
million rows peak at the size of their columns plus a few blocks, not several copies of the
file. Before that, the header is read from at most the first 64 KiB, which refuses a file of NUL
bytes, a device such as /dev/zero or any other binary file at once.

Used by ``bot.backtest.data.read_csv``, which checks the prices and the order of the times.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from bot.backtest.data import DataInputError
from bot.bars import NS

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
UNIT_NS = {"s": NS, "ms": 1_000_000, "us": 1_000, "ns": 1}
HEADER_LIMIT = 64 * 1024  # a header line longer than this is not a CSV file of bars
BLOCK_SIZE = 256 * 1024  # pyarrow's read block: no line of bars comes near it
# The times int64 nanoseconds can hold, with a day to spare at each end.
FIRST_NS = -(2**63) + 86_400 * NS
LAST_NS = 2**63 - 1 - 86_400 * NS


def read_columns(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(times, [open, high, low, close, volume])``: int64 ns and float64 columns, every value
    present and finite (volume zeros when the file has none)."""
    names, head = _header(path)
    columns = _pick_columns(path, names)
    capacity = _estimate_rows(path, head)
    prices = _Columns(len(columns) - 1, capacity)
    time_chunks: list[Any] = []
    for batch in _batches(path, columns):
        for index, name in enumerate(columns):
            _check_no_nulls(path, batch.column(index), name, prices.rows)
        time_chunks.append(batch.column(0))
        prices.append([_values(batch.column(i), np.float64) for i in range(1, len(columns))])
    if prices.rows == 0:
        raise DataInputError(f"{path}: no rows of data")
    values = prices.arrays()
    for name, array in zip(columns[1:], values, strict=True):
        bad = ~np.isfinite(array)
        if bad.any():
            raise DataInputError(
                f"{path} line {int(bad.argmax()) + 2}: {_label(name)} is not a finite number"
            )
    import pyarrow as pa

    times = _times(path, pa.chunked_array(time_chunks), columns[0])
    del time_chunks
    pa.default_memory_pool().release_unused()  # the reader's blocks: give them back before the run
    if len(values) == 4:
        values.append(np.zeros(len(times)))
    return times, values


class _Columns:
    """Float columns filled block by block, grown by half when the estimate was short."""

    def __init__(self, count: int, capacity: int) -> None:
        self.columns = [np.empty(capacity) for _ in range(count)]
        self.rows = 0

    def append(self, parts: list[np.ndarray]) -> None:
        n, k = self.rows, len(parts[0])
        if n + k > len(self.columns[0]):
            size = max(n + k, len(self.columns[0]) * 3 // 2)
            for i, old in enumerate(self.columns):
                self.columns[i] = np.empty(size)
                self.columns[i][:n] = old[:n]
        for column, part in zip(self.columns, parts, strict=True):
            column[n : n + k] = part
        self.rows = n + k

    def arrays(self) -> list[np.ndarray]:
        return [column[: self.rows] for column in self.columns]


def _estimate_rows(path: Path, head: bytes) -> int:
    """Rows in the file, from its size and the lengths of the lines in its first 64 KiB (a little
    over, so the arrays are rarely grown)."""
    lines = head.count(b"\n")
    try:
        size = os.stat(path).st_size
    except OSError:
        size = 0
    if lines < 2 or size <= len(head):
        return max(lines, 1024)
    return int(size / (len(head) / lines) * 1.02) + 1024


def _batches(path: Path, columns: list[str]):
    import pyarrow as pa
    from pyarrow import csv as pacsv

    convert = pacsv.ConvertOptions(
        include_columns=columns, column_types={name: pa.float64() for name in columns[1:]}
    )
    options = pacsv.ReadOptions(use_threads=True, block_size=BLOCK_SIZE)
    try:
        reader = pacsv.open_csv(path, read_options=options, convert_options=convert)
        yield from reader
    except pa.ArrowInvalid as exc:
        raise DataInputError(_explain(path, str(exc))) from None


def _header(path: Path) -> tuple[list[str], bytes]:
    """The header's names and the first 64 KiB read to find them: a file of NUL bytes, a device
    such as /dev/zero or any other binary file is refused here, before anything big is read."""
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
    return next(csv.reader([text])), head


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
    if missing or time_name is None:
        have = ", ".join(n.strip() for n in names) or "none"
        raise DataInputError(f"{path}: missing column {', '.join(missing)} (header has: {have})")
    picked = [time_name, *(found[k] for k in PRICE_NAMES)]
    if "volume" in found:
        picked.append(found["volume"])
    return picked


def _label(name: str) -> str:
    return name.strip().lower()


def _explain(path: Path, message: str) -> str:
    """Turn pyarrow's error into a line that names the line and column."""
    # pyarrow names the row in some runs ("Row #3: ") and not in others (threaded parsing).
    match = re.search(
        r"CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to double: invalid value '(.*)'", message
    )
    if match:
        names, _ = _header(path)
        name = names[int(match.group(1))]
        value = match.group(2)
        line = _find_line(path, name, value)
        where = f"{path} line {line}" if line else str(path)
        return f"{where}: {_label(name)} has {value!r}, which is not a number"
    if "straddling object" in message:  # one "line" longer than a whole block: binary data
        return f"{path}: not CSV text (a line longer than {BLOCK_SIZE // 1024} KiB; binary data?)"
    first = message.strip().splitlines()[0] if message.strip() else "unreadable"
    return f"{path}: not a readable CSV file: {first}"


def _find_line(path: Path, name: str, value: str) -> int | None:
    """The line holding ``value`` in column ``name`` (streamed: memory stays bounded)."""
    import pyarrow as pa
    from pyarrow import csv as pacsv

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE),
        convert_options=pacsv.ConvertOptions(include_columns=[name], column_types={name: pa.string()}),
    )
    line = 2
    for batch in reader:
        cells = batch.column(0).to_pylist()
        if value in cells:
            return line + cells.index(value)
        line += len(cells)
    return None


def _check_no_nulls(path: Path, column: Any, name: str, before: int) -> None:
    if column.null_count:
        import pyarrow.compute as pc

        first = int(np.asarray(pc.is_null(column)).argmax())
        raise DataInputError(f"{path} line {before + first + 2}: {_label(name)} is empty or NaN")


def _values(chunk: Any, dtype: type) -> np.ndarray:
    """A null-free arrow array of 8-byte values as a numpy view of its buffer (pyarrow's
    ``to_numpy`` would import pandas, which costs 0.5 s)."""
    return np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * 8)


def _concat(column: Any, dtype: type) -> np.ndarray:
    parts = [_values(chunk, dtype) for chunk in column.chunks]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _times(path: Path, column: Any, name: str) -> np.ndarray:
    """Any supported time column as int64 ns since the epoch, UTC."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_timestamp(kind):
        return _scaled(path, name, column, _concat(column, np.int64), UNIT_NS[kind.unit])
    if pa.types.is_date32(kind):
        days = _concat(column.cast(pa.int32()).cast(pa.int64()), np.int64)
        return _scaled(path, name, column, days, 86_400 * NS)
    if pa.types.is_integer(kind):
        values = _concat(column.cast(pa.int64()), np.int64)
        return _scaled(path, name, column, values, _epoch_unit(values))
    if pa.types.is_floating(kind):
        return _float_epoch(path, name, _concat(column, np.float64))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _parse_strings(path, column, name)
    raise DataInputError(f"{path}: column {name!r} has {kind} values, not dates")


def _epoch_unit(values: np.ndarray) -> int:
    """Nanoseconds per unit of epoch numbers, guessed from the size of the first value:
    seconds below 1e11, milliseconds below 1e14, microseconds below 1e17, else nanoseconds."""
    first = abs(float(values[0])) if len(values) else 0.0
    for limit, unit in ((1e11, "s"), (1e14, "ms"), (1e17, "us")):
        if first < limit:
            return UNIT_NS[unit]
    return 1


def _scaled(path: Path, name: str, column: Any, values: np.ndarray, factor: int) -> np.ndarray:
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
            f"{path} line {i + 2}: {_label(name)} {float(values[i])!r} is not a time (not a finite number)"
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
        f"{path} line {i + 2}: {_label(name)} {shown} is outside the times this program handles "
        "(the years 1678 to 2261; epoch numbers in s, ms, us or ns)"
    )


def _parse_strings(path: Path, column: Any, name: str) -> np.ndarray:
    import pyarrow.compute as pc

    best: tuple[int, int] | None = None  # (parsed count, first failure)
    for fmt in STRING_FORMATS:
        parsed = pc.strptime(column, format=fmt, unit="ns", error_is_null=True)
        if parsed.null_count == 0:
            return _concat(parsed, np.int64)
        ok = len(parsed) - parsed.null_count
        if best is None or ok > best[0]:
            best = (ok, int(np.asarray(pc.is_null(parsed)).argmax()))
    first_bad = best[1] if best else 0
    value = column[first_bad].as_py()
    raise DataInputError(
        f"{path} line {first_bad + 2}: {_label(name)} {value!r} is not a date "
        "(use ISO 8601 like 2024-01-31 or 2024-01-31T09:30:00Z, or epoch seconds)"
    )
