"""The research worker: one ``tradebot backtest`` run in a process of its own, below the bot.

``python -m bot.research.worker JOB_FOLDER``, started by ``bot.research.supervisor``. Before it
imports anything heavy it lowers its own priority (``os.setpriority``, ``NICE``: the trading cycle
always comes first) and caps its address space (``RLIMIT_AS`` at the job's ``memory_mb``); the
processes of a sweep's pool inherit both. It then runs the command the job names, through
``tradebot``'s own parser and ``bot.backtest.runner.main``, with the running bot's settings
(``job.json``'s ``config``), its outputs going to the job's folder and its text report to
``report.txt``.

Standard output is the progress channel: one JSON object per line, ``bot.backtest.channel``'s
messages as they come (``stage``, ``done``/``total``, ``error``) and ``{"figures": true}`` once
``figures.json`` is written. An allocation beyond the cap ends the job with one line saying so.
If the bot's process goes away (even by SIGKILL), the worker notices within a second and kills
its whole process group: no backtest outlives the bot.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

NICE = 19  # the lowest CPU priority there is
PARENT_CHECK_SECONDS = 1.0
EXIT_FAILED = 1


def lower_priority() -> None:
    os.setpriority(os.PRIO_PROCESS, 0, NICE)


def cap_memory(megabytes: int) -> None:
    """RLIMIT_AS, soft and hard: the process (and every process it starts) can never raise it."""
    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def follow_parent() -> None:
    """Kill this process group when the process that started us is gone (re-parented)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent:
                os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class Channel:
    """Writes each message as one JSON line on the descriptor the supervisor reads."""

    def __init__(self, fd: int, folder: Path) -> None:
        self.out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self.folder = folder
        self.lock = threading.Lock()
        self.error: str | None = None

    def __call__(self, message: dict[str, Any]) -> None:
        if "figures" in message:
            from bot.research.jobs import FIGURES

            (self.folder / FIGURES).write_text(json.dumps(finite(message["figures"])), encoding="utf-8")
            message = {"figures": True}
        if "error" in message:
            self.error = str(message["error"])
        with self.lock:
            self.out.write(json.dumps(message) + "\n")


def finite(value: Any) -> Any:
    """JSON-ready: infinities and NaN become null, at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    job = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    lower_priority()
    cap_memory(int(job["memory_mb"]))
    follow_parent()
    # Standard output becomes the report file (the command prints its text report there, and so
    # would any stray print in a pool process); the channel keeps the original descriptor.
    channel = Channel(os.dup(1), folder)
    report = open(folder / "report.txt", "w", encoding="utf-8")  # noqa: SIM115 - kept open to the end
    sys.stdout.flush()
    os.dup2(report.fileno(), 1)
    try:
        status = _run(job, channel)
    except Exception as exc:  # one line for the page; the traceback goes to worker.log
        import traceback

        traceback.print_exc()
        if isinstance(exc, MemoryError) or near_cap(int(job["memory_mb"])):
            channel({"error": _memory_line(job, exc)})
            return EXIT_FAILED
        name = type(exc).__name__
        line = "a sweep process died" if name == "BrokenProcessPool" else f"{name}: {exc}"
        if name == "BrokenProcessPool":
            line += f" (killed, or out of its {job['memory_mb']} MB of memory: TRADEBOT_RESEARCH_MEMORY_MB)"
        channel({"error": line.splitlines()[0][:500]})
        return EXIT_FAILED
    finally:
        sys.stdout.flush()
    if status != 0 and channel.error is None:
        channel({"error": f"tradebot backtest stopped with status {status}"})
    return status


def _run(job: dict[str, Any], channel: Channel) -> int:
    from bot.backtest import channel as backtest_channel
    from bot.backtest.runner import main as backtest
    from bot.config import Settings
    from bot.research.jobs import parse

    config = Settings.from_mapping(job["config"])
    if config.tradebot_pure_python:
        from bot import kernels

        kernels.use_pure_python()
    args = parse(job["argv"])
    with backtest_channel.listening(channel):
        backtest_channel.stage("starting")
        return backtest(args, config)


NEAR_CAP_MB = 64  # a failure with the address space this close to the cap is the cap's doing


def near_cap(megabytes: int) -> bool:
    """Whether this process came within ``NEAR_CAP_MB`` of its address-space cap. Under RLIMIT_AS
    running out shows in many ways besides MemoryError: a library that cannot be mapped
    (ImportError), a thread that cannot start (RuntimeError, pyarrow's ArrowException)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) // 1024 >= megabytes - NEAR_CAP_MB
    except OSError:
        pass
    return False


def _memory_line(job: dict[str, Any], exc: BaseException) -> str:
    detail = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}" if str(exc) else type(exc).__name__
    return (
        f"out of memory: the job needed more than its {job['memory_mb']} MB "
        f"(TRADEBOT_RESEARCH_MEMORY_MB) ({detail})"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
