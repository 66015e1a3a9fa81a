"""What a research job may read, listed for the page, and nothing else.

* the samples shipped with tradebot (``bot/backtest/samples.py``);
* the local bar store under ``TRADEBOT_DATA_DIR`` (``bot/data/store.py``, filled by
  ``tradebot data download``), read with ``--source store``: no network, a span it lacks refused;
* CSV files under ``TRADEBOT_RESEARCH_CSV_DIR`` (empty: none). A file is named by its path
  relative to that folder; whatever it resolves to (``..``, an absolute path, a symbolic link
  out of the folder) must lie inside it, or it is refused with the same line as a file that does
  not exist, so the page can never read, or even probe, any other file on the server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bot.data.store import BarStore, StoreError, from_ns

MAX_LISTED_FILES = 500  # CSV files the page lists (the first by path)
MAX_DEPTH = 3  # folders below TRADEBOT_RESEARCH_CSV_DIR that are searched for CSV files


class SourceError(ValueError):
    """A file or dataset a job may not read; the message is one line."""


@dataclass(frozen=True, slots=True)
class StoredSeries:
    symbol: str
    timeframe: str
    bars: int
    first: str | None  # ISO 8601 UTC of the first and last stored bar
    last: str | None
    source: str


@dataclass(frozen=True, slots=True)
class CsvFile:
    path: str  # relative to the CSV folder, with forward slashes
    size: int


def csv_path(folder: Path | None, name: str) -> Path:
    """The CSV file ``name`` (relative to ``folder``) as an absolute path inside ``folder``."""
    if folder is None:
        raise SourceError("CSV files are off: set TRADEBOT_RESEARCH_CSV_DIR to the folder the page may read")
    refused = SourceError(f"{name!r} is not a CSV file in TRADEBOT_RESEARCH_CSV_DIR ({folder})")
    if not name or "\x00" in name or len(name) > 1024:
        raise refused
    root = folder.resolve()
    try:
        path = (root / name).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a loop of links, unreadable
        raise refused from None
    if not path.is_relative_to(root) or not path.is_file() or path.suffix.lower() != ".csv":
        raise refused
    return path


def csv_files(folder: Path | None) -> list[CsvFile]:
    """The CSV files the page may offer (at most ``MAX_LISTED_FILES``, by path)."""
    if folder is None or not folder.is_dir():
        return []
    root = folder.resolve()
    found: list[CsvFile] = []
    for where, dirs, files in os.walk(root):  # symbolic links to folders are not followed
        depth = len(Path(where).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < MAX_DEPTH else []
        for name in sorted(files):
            if not name.lower().endswith(".csv") or name.startswith("."):
                continue
            relative = (Path(where) / name).relative_to(root).as_posix()
            try:
                path = csv_path(root, relative)
            except SourceError:  # a link out of the folder: never offered
                continue
            found.append(CsvFile(relative, path.stat().st_size))
            if len(found) >= MAX_LISTED_FILES:
                return found
    return found


def stored_series(data_dir: Path) -> list[StoredSeries]:
    """What the local store holds, by symbol and timeframe; an unreadable file is left out."""
    out = []
    try:
        for _path, dataset in BarStore(data_dir).datasets():
            out.append(
                StoredSeries(
                    dataset.symbol,
                    dataset.timeframe.label,
                    dataset.bars,
                    _iso(dataset.first),
                    _iso(dataset.last),
                    ", ".join(dataset.sources()),
                )
            )
    except StoreError:
        pass  # `tradebot data list` names the damaged file; the page offers what it could read
    return out


def _iso(ns: int | None) -> str | None:
    return None if ns is None else from_ns(ns).strftime("%Y-%m-%dT%H:%M:%SZ")
