"""Logging set-up: one line per event, text or JSON, with every configured secret redacted.

httpx logs each request URL at INFO, and a Telegram Bot API URL contains the token: httpx is
raised to WARNING, and the redaction filter catches anything else that slips through.

Two audiences. Not on a terminal (Heroku, a pipe, ``LOG_FORMAT=json``) the full log goes to
standard error, as it always did. A person at the console (``tradebot run`` on a terminal) reads
replies and alerts instead: the screen shows warnings and errors only, never an alert a second
time (the console prints each alert itself), and the full log goes to a file the banner names.
``LOG_LEVEL`` set explicitly always sets what the screen shows.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Telegram bot tokens look like 123456789:AA...; mask them even if not configured here.
TOKEN_PATTERN = re.compile(r"(?<![0-9])\d{6,12}:[A-Za-z0-9_-]{30,}")
MASK = "***"
# ``extra`` of the log record the service writes for each alert (event) it publishes.
ALERT = {"alert": True}
LOG_FILE_BYTES = 5_000_000  # the console's log file rotates at this size, keeping two old files
NOISY = ("httpx", "httpcore", "apscheduler.executors.default", "urllib3", "websockets", "alembic")


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return TOKEN_PATTERN.sub(MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = self.redact(message)
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int  # 1, 2, 3... in the order logged (since this process started)
    time: datetime
    level: str  # DEBUG, INFO, WARNING, ERROR, CRITICAL
    logger: str
    message: str  # redacted, as every handler writes it


class RecentLines(logging.Handler):
    """The last ``size`` log lines in memory, redacted, for the dashboard's log viewer: a ring
    buffer, so the oldest line goes when a new one comes. ``listeners`` are told of each new line
    (from the thread that logged it; they must not log)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.lines: deque[LogLine] = deque(maxlen=size)
        self.seq = 0
        self.listeners: list[Callable[[], None]] = []
        self._guard = threading.Lock()

    @property
    def size(self) -> int:
        return self.lines.maxlen or 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is
            message = str(record.msg)
        with self._guard:
            self.seq += 1
            self.lines.append(
                LogLine(
                    self.seq,
                    datetime.fromtimestamp(record.created, tz=UTC),
                    record.levelname,
                    record.name,
                    message,
                )
            )
        for listener in list(self.listeners):
            listener()

    def after(
        self, seq: int = 0, level: str = "DEBUG", limit: int | None = None
    ) -> tuple[list[LogLine], int]:
        """Lines after ``seq`` at ``level`` or above, oldest first (the newest ``limit`` of them),
        and the newest seq at any level when they were read: the ``seq`` to ask after next."""
        levels = logging.getLevelNamesMapping()
        least = levels.get(level.upper(), logging.DEBUG)
        with self._guard:
            lines = [line for line in self.lines if line.seq > seq and levels.get(line.level, 0) >= least]
            newest = self.seq
        return (lines[-limit:] if limit else lines), newest


# The dashboard's log viewer (``GET /api/v1/logs``): the last RECENT_LINES lines of this process.
RECENT_LINES = 1000
RECENT = RecentLines(RECENT_LINES)


class HideAlerts(logging.Filter):
    """Drop the log records of alerts: the console prints each alert itself, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "alert", False)


def setup_logging(
    level: str = "INFO",
    fmt: str = "text",
    secrets: list[str] | None = None,
    *,
    screen_level: str | None = None,
    hide_alerts: bool = False,
    log_file: str | Path | None = None,
) -> None:
    """Log to standard error at ``level``, or at ``screen_level`` when given (the console).

    ``hide_alerts`` keeps alert records off standard error; ``log_file`` also writes every
    record at ``level`` to that file (rotated), so a quiet screen loses nothing. The last
    ``RECENT_LINES`` records at ``level`` are kept in memory (``RECENT``) for the dashboard.
    """
    redact = RedactingFilter(secrets or [])
    formatter = JsonFormatter() if fmt.lower() == "json" else logging.Formatter(TEXT_FORMAT)
    level = _level(level)
    screen = logging.StreamHandler(sys.stderr)
    screen.addFilter(redact)
    screen.setFormatter(formatter)
    screen.setLevel(_level(screen_level) if screen_level else level)
    if hide_alerts:
        screen.addFilter(HideAlerts())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, logging.FileHandler):
            old.close()
    root.addHandler(screen)
    RECENT.filters = [redact]  # the log viewer shows what the log files show: secrets masked
    RECENT.setLevel(level)
    root.addHandler(RECENT)
    if log_file is not None:
        from logging.handlers import RotatingFileHandler

        file = RotatingFileHandler(log_file, maxBytes=LOG_FILE_BYTES, backupCount=2, encoding="utf-8")
        file.addFilter(redact)
        file.setFormatter(formatter)
        file.setLevel(level)
        root.addHandler(file)
    root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _level(name: str) -> str:
    name = name.strip().upper()
    return name if name in logging.getLevelNamesMapping() else "INFO"
