"""A real ``tradebot`` process at a pseudo-terminal, driven as a person at a keyboard would.

The child's standard input, output and error are the slave side of a pty that is also its
controlling terminal, so Ctrl-C typed here (``\\x03``) reaches it as the line discipline's SIGINT,
exactly as at a real terminal; its standard input stays open until the test ends, as a
person's keyboard does. A thread drains the master side into a transcript.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

from tests import processes

CTRL_C = "\x03"
CTRL_D = "\x04"


def _take_terminal() -> None:
    """In the child, after setsid(): make the pty on fd 0 the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(self, workdir: Path, env: dict[str, str], *args: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        self.master = master
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            cwd=workdir,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_take_terminal,  # only an ioctl; the child execs at once
        )
        os.close(slave)
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child and every holder of the slave side are gone
                return
            if not chunk:
                return
            with self._lock:
                self._chunks.append(chunk)

    @property
    def screen(self) -> str:
        """Everything shown so far, with the terminal's CRLF turned back into newlines."""
        with self._lock:
            data = b"".join(self._chunks)
        return data.decode("utf-8", errors="replace").replace("\r\n", "\n")

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait_for(self, text: str, timeout: float = 60, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen
            if screen.count(text) >= count:
                return screen
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"{text!r} not shown {count}x (exit {self.process.poll()}):\n{self.screen[-4000:]}"
        )

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status, or None if the process is still running after ``timeout`` s (a hang)."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        os.close(self.master)


def environment(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A keyless simulated bot on a SQLite file in ``tmp_path``; no LOG_LEVEL unless given."""
    env = processes.environment(f"sqlite:///{tmp_path / 'tradebot.db'}", TRADEBOT_CONSOLE="auto")
    env.pop("LOG_LEVEL")
    env.update(TERM="xterm", TRADEBOT_SYMBOLS="AAPL,MSFT,SPY,BTC/USD,ETH/USD", **overrides)
    return env
