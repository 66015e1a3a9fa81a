"""Research jobs, run one at a time in a worker process the bot's process starts and watches.

``Research.start`` checks the job (``bot.research.jobs.prepare``: the command's own refusals),
gives it a folder of its own under ``TRADEBOT_RESEARCH_DIR`` and starts
``python -m bot.research.worker FOLDER`` in a new session (so the worker and the processes of its
sweep form one process group), with no tradebot variable in its environment (it gets the few a
backtest reads in ``job.json``) and one thread per process for the numeric libraries. A thread of
the bot's process (never the event loop) then follows it:

* reads the worker's progress channel (one JSON line per message) and passes each change to
  ``notify`` (the dashboard's WebSocket), progress at most every ``PROGRESS_SECONDS``;
* every ``MEMORY_SECONDS``, adds up the resident memory of the job's processes; above
  ``TRADEBOT_RESEARCH_MEMORY_MB`` it kills them all (each process is also capped at that much
  address space by the worker itself, so one allocation too many fails at once, in one line;
  and since running out can hang a library instead, a job silent for ``STALL_SECONDS`` with a
  process at its address-space cap is killed as out of memory too);
* on cancel (``DELETE``) or shutdown, SIGTERM to the group, SIGKILL after ``STOP_GRACE_SECONDS``;
* once the worker has exited, and before it is reaped (a zombie keeps its process group id from
  being reused), SIGKILL to whatever is left of the group: no orphan survives a job.

How a job ended (done, failed with one line, canceled) is logged in one line and kept in its
folder (``state.json``) beside its outputs, so the page lists recent jobs after a restart too;
the ``KEEP_JOBS`` newest folders are kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.research.jobs import FIGURES, JobRequest, Places, prepare, worker_config

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
KEEP_JOBS = 20
POLL_SECONDS = 0.2
MEMORY_SECONDS = 1.0
PROGRESS_SECONDS = 0.25
STOP_GRACE_SECONDS = 1.0
# Under RLIMIT_AS, running out can hang a library instead of failing (pyarrow waits for a thread it
# could not start): a job silent this long with a process's address space within NEAR_CAP_MB of
# the cap is stopped as out of memory.
STALL_SECONDS = 10.0
NEAR_CAP_MB = 64
# One thread per process for the numeric libraries, glibc's malloc with few arenas, pyarrow on the
# system allocator: the address space stays near the resident memory, so RLIMIT_AS is a usable
# cap (with mimalloc's reservations a 1,000,000-bar sweep mapped 1.5 GB for 230 MB resident).
WORKER_ENVIRONMENT = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "PYTHONUNBUFFERED": "1",
}


class ResearchOff(Exception):
    """Research cannot start here; the message says why."""


class Busy(ResearchOff):
    """Another job is running (one at a time)."""


class NoSuchJob(LookupError):
    pass


@dataclass
class JobState:
    """What the page shows of a job, and what ``state.json`` keeps."""

    id: str
    title: str
    kind: str  # backtest, sweep, walk_forward, portfolio
    by: str
    created: str
    state: str = "running"  # running, done, failed, canceled
    stage: str = "starting"
    done: int = 0
    total: int = 0
    started: str | None = None
    finished: str | None = None
    error: str | None = None
    files: list[str] = field(default_factory=list)
    request: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ResearchSettings:
    enabled: bool
    folder: Path
    memory_mb: int
    places: Places

    @classmethod
    def from_settings(cls, settings: Any) -> ResearchSettings:
        csv_dir = str(settings.tradebot_research_csv_dir).strip()
        return cls(
            enabled=bool(settings.tradebot_research),
            folder=Path(settings.tradebot_research_dir).resolve(),
            memory_mb=int(settings.tradebot_research_memory_mb),
            places=Places(
                data_dir=Path(settings.tradebot_data_dir),
                csv_dir=Path(csv_dir) if csv_dir else None,
                workers=int(settings.tradebot_research_workers),
            ),
        )


@dataclass
class _Running:
    state: JobState
    folder: Path
    proc: subprocess.Popen[bytes]
    cancel_by: str | None = None
    over_memory: str | None = None
    killing_since: float | None = None
    thread: threading.Thread | None = None
    reaped_elsewhere: bool = False  # someone else waited for it: its group id may be reused


class Research:
    def __init__(
        self,
        settings: ResearchSettings,
        bot_settings: Any,
        notify: Callable[[dict[str, Any]], None] = lambda state: None,
    ) -> None:
        self.settings = settings
        self.bot_settings = bot_settings
        self.notify = notify
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._closed = False

    # ------------------------------------------------------------------ starting

    def start(self, request: JobRequest, by: str) -> JobState:
        """Check ``request`` and start it; ``JobRefused`` (one line), ``Busy`` or ``ResearchOff``."""
        if not self.settings.enabled:
            raise ResearchOff("research from the dashboard is off on this instance (TRADEBOT_RESEARCH=false)")
        with self._lock:
            if self._closed:
                raise ResearchOff("tradebot is stopping")
            if self._running is not None:
                busy = self._running.state
                raise Busy(
                    f"research job {busy.id} is still running ({busy.stage}): cancel it or wait for it"
                )
            job_id, folder = self._new_folder()
            try:
                prepared = prepare(request, self.settings.places, folder, self.bot_settings)
            except BaseException:  # JobRefused, or anything unforeseen: a refused job leaves nothing
                shutil.rmtree(folder, ignore_errors=True)
                raise
            now = _now()
            state = JobState(
                id=job_id,
                title=prepared.title,
                kind=prepared.kind,
                by=by,
                created=now,
                started=now,
                total=prepared.combinations
                if prepared.kind == "sweep"
                else 0,  # walk-forward: its first message
                request=request.model_dump(),
            )
            job = {
                "argv": prepared.argv,
                "config": worker_config(self.bot_settings),
                "memory_mb": self.settings.memory_mb,
                "files": list(prepared.files),
            }
            (folder / "job.json").write_text(json.dumps(job, indent=1), encoding="utf-8")
            _save(folder, state)
            self._prune(keep=folder)
            try:
                with (folder / "worker.log").open("wb") as log_file:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "bot.research.worker", str(folder)],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=log_file,
                        env=_worker_environment(),
                        start_new_session=True,  # its own process group: cancel reaches its pool too
                        close_fds=True,
                    )
            except OSError as exc:  # no memory or processes left for one more: say so, in one line
                state.state, state.finished = "failed", _now()
                state.error = f"could not start the research worker: {exc.strerror or exc}"
                _save(folder, state)
                raise ResearchOff(state.error) from None
            (folder / "worker.pid").write_text(str(proc.pid), encoding="ascii")
            running = _Running(state, folder, proc)
            running.thread = threading.Thread(target=self._follow, args=(running,), name=f"research-{job_id}")
            self._running = running
            log.info("research job %s started by %s: %s (worker pid %d)", job_id, by, state.title, proc.pid)
            self.notify(state.as_dict())  # before the thread can report progress
            running.thread.start()
        return state

    def _new_folder(self) -> tuple[str, Path]:
        self.settings.folder.mkdir(parents=True, exist_ok=True)
        while True:
            job_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
            folder = self.settings.folder / job_id
            with contextlib.suppress(FileExistsError):
                folder.mkdir()
                return job_id, folder

    # ------------------------------------------------------------------ reading

    def jobs(self) -> list[JobState]:
        """The kept jobs, newest first (the running one as it is now)."""
        found = []
        for folder in self._folders():
            state = self.job(folder.name)
            if state is not None:
                found.append(state)
        return found

    def job(self, job_id: str) -> JobState | None:
        if not JOB_ID.match(job_id):
            return None
        running = self._running
        if running is not None and running.state.id == job_id:
            return running.state
        folder = self.settings.folder / job_id
        state = _load(folder)
        if state is not None and state.state == "running" and not _alive(folder):
            # Started by an earlier run of the bot, and gone with it. (One still alive is another
            # instance's, when two share the folder: shown as it is.)
            state.state, state.error = "failed", "tradebot stopped while it ran"
        return state

    def figures(self, job_id: str) -> dict[str, Any] | None:
        state = self.job(job_id)
        if state is None or FIGURES not in state.files:
            return None
        try:
            return json.loads((self.settings.folder / job_id / FIGURES).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def file(self, job_id: str, name: str) -> Path | None:
        """One of the job's outputs, if the job wrote it (only names it listed)."""
        state = self.job(job_id)
        if state is None or name not in state.files:
            return None
        path = self.settings.folder / job_id / name
        return path if path.is_file() else None

    def running(self) -> JobState | None:
        running = self._running
        return running.state if running is not None else None

    # ------------------------------------------------------------------ stopping

    def cancel(self, job_id: str, by: str) -> JobState:
        """Stop the running job ``job_id`` (its whole process group); wait until it is gone."""
        with self._lock:
            running = self._running
            if running is None or running.state.id != job_id:
                state = self.job(job_id)
                if state is None:
                    raise NoSuchJob(job_id)
                return state  # already ended: nothing to do
            running.cancel_by = by
        if running.thread is not None:
            running.thread.join(STOP_GRACE_SECONDS + 10)
        return running.state

    def close(self) -> None:
        """At shutdown: no new job; the running one is killed, with its processes."""
        with self._lock:
            self._closed = True
            running = self._running
            if running is not None:
                running.cancel_by = "shutdown"
        if running is not None and running.thread is not None:
            running.thread.join(STOP_GRACE_SECONDS + 10)

    # ------------------------------------------------------------------ following the worker

    def _follow(self, run: _Running) -> None:
        try:
            self._watch(run)
        except Exception:  # never leave a worker behind because this thread failed
            log.exception("research job %s: following the worker failed; killing it", run.state.id)
            _signal_group(run.proc.pid, signal.SIGKILL)
            run.over_memory = run.over_memory or "the bot lost track of the worker (see the log)"
        finally:
            self._finish(run)

    def _watch(self, run: _Running) -> None:
        fd = run.proc.stdout.fileno()  # type: ignore[union-attr]
        pending = b""
        open_channel = True
        next_memory = time.monotonic() + MEMORY_SECONDS
        last_sent = 0.0
        last_heard = time.monotonic()
        cap = self.settings.memory_mb * 1024 * 1024
        while True:
            if open_channel:
                ready, _, _ = select.select([fd], [], [], POLL_SECONDS)
                if ready:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        open_channel = False
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    changed = any([self._heard(run, line) for line in lines])
                    now = time.monotonic()
                    last_heard = now if lines else last_heard
                    if changed and (now - last_sent >= PROGRESS_SECONDS or run.state.done == run.state.total):
                        last_sent = now
                        self.notify(run.state.as_dict())
            else:
                time.sleep(POLL_SECONDS)
            exited = _exited(run.proc.pid)
            if exited is None:
                run.reaped_elsewhere = True
                return
            if exited:
                return
            now = time.monotonic()
            if run.cancel_by and run.killing_since is None:
                run.killing_since = now
                _signal_group(run.proc.pid, signal.SIGTERM)
            elif run.killing_since is not None and now - run.killing_since > STOP_GRACE_SECONDS:
                _signal_group(run.proc.pid, signal.SIGKILL)
            if now >= next_memory and run.killing_since is None:
                next_memory = now + MEMORY_SECONDS
                resident, largest = group_memory(run.proc.pid)
                mb = self.settings.memory_mb
                if resident > cap:
                    run.over_memory = (
                        f"out of memory: its processes used {resident / 2**20:,.0f} MB, above "
                        f"TRADEBOT_RESEARCH_MEMORY_MB={mb}; killed"
                    )
                elif now - last_heard > STALL_SECONDS and largest >= cap - NEAR_CAP_MB * 2**20:
                    run.over_memory = (
                        f"out of memory: stuck for {STALL_SECONDS:g} s at its {mb} MB of address space "
                        f"(TRADEBOT_RESEARCH_MEMORY_MB); killed"
                    )
                if run.over_memory:
                    run.killing_since = now
                    _signal_group(run.proc.pid, signal.SIGKILL)

    def _heard(self, run: _Running, line: bytes) -> bool:
        """One message of the channel applied to the job's state; True if the page should hear of it."""
        try:
            message = json.loads(line)
        except ValueError:
            return False
        state = run.state
        if "stage" in message:
            state.stage = str(message["stage"])[:100]
        if "done" in message:
            state.done, state.total = int(message["done"]), int(message["total"])
        if "error" in message:
            state.error = str(message["error"])[:1000]
        return True

    def _finish(self, run: _Running) -> None:
        # The worker is a zombie now (not reaped): its process group id cannot have been reused.
        if not run.reaped_elsewhere:
            _signal_group(run.proc.pid, signal.SIGKILL)  # anything it left behind
        try:
            status = run.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # cannot be: it had exited; never hang the bot on it
            _signal_group(run.proc.pid, signal.SIGKILL)
            status = run.proc.wait()
        if run.proc.stdout is not None:
            run.proc.stdout.close()
        state = run.state
        state.finished = _now()
        if run.cancel_by:
            state.state, state.error = "canceled", f"canceled by {run.cancel_by}"
        elif run.over_memory:
            state.state, state.error = "failed", run.over_memory
        elif status == 0:
            state.state, state.error = "done", None
        else:
            state.state = "failed"
            if status < 0:
                name = signal.Signals(-status).name
                state.error = f"the worker was killed by {name}" + (
                    f" (out of its {self.settings.memory_mb} MB of memory?)"
                    if name in ("SIGKILL", "SIGSEGV", "SIGABRT", "SIGBUS")
                    else ""
                )
            elif not state.error:
                state.error = f"the worker stopped with status {status} (see {run.folder / 'worker.log'})"
        state.files = [name for name in _job_files(run.folder) if (run.folder / name).is_file()]
        if state.state == "done":
            state.stage, state.done = "done", state.total
        _save(run.folder, state)
        with self._lock:
            if self._running is run:
                self._running = None
        if state.state == "failed":
            log.warning("research job %s failed: %s", state.id, state.error)
        else:
            log.info("research job %s %s", state.id, state.state)
        self.notify(state.as_dict())

    # ------------------------------------------------------------------ folders

    def _folders(self) -> list[Path]:
        root = self.settings.folder
        if not root.is_dir():
            return []
        return sorted((p for p in root.iterdir() if p.is_dir() and JOB_ID.match(p.name)), reverse=True)

    def _prune(self, keep: Path) -> None:
        for old in self._folders()[KEEP_JOBS:]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------- helpers


def _worker_environment() -> dict[str, str]:
    """The bot's environment without any tradebot variable (no key, no password, no URL), plus
    ``WORKER_ENVIRONMENT``."""
    from bot.config import Settings

    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    return {**env, **WORKER_ENVIRONMENT}


def _job_files(folder: Path) -> list[str]:
    try:
        job = json.loads((folder / "job.json").read_text(encoding="utf-8"))
        return [str(name) for name in job.get("files", [])]
    except (OSError, ValueError):
        return []


def _save(folder: Path, state: JobState) -> None:
    temporary = folder / "state.json.tmp"
    temporary.write_text(json.dumps(state.as_dict(), indent=1), encoding="utf-8")
    temporary.replace(folder / "state.json")


def _load(folder: Path) -> JobState | None:
    try:
        data = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        return JobState(**data)
    except (OSError, ValueError, TypeError):
        return None


def _alive(folder: Path) -> bool:
    """Whether the worker recorded in ``folder`` still runs."""
    try:
        pid = int((folder / "worker.pid").read_text(encoding="ascii"))
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _exited(pid: int) -> bool | None:
    """Whether the child ``pid`` has exited, without reaping it; None if it was reaped already."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    return info is not None and info.si_pid == pid


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (Linux: from /proc; elsewhere none). A
    ``getpgid`` per process, and /proc/PID/stat (for zombies) only for the group's: about 4 ms a
    scan on a machine of 200 processes, once a second, off the event loop."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    members = []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            if os.getpgid(int(name)) != pgid:
                continue
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        if stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z":  # a zombie holds no memory
            members.append(int(name))
    return members


def group_memory(pgid: int) -> tuple[int, int]:
    """The resident memory of the processes of group ``pgid`` added up, and the largest address
    space among them, in bytes."""
    page = os.sysconf("SC_PAGE_SIZE")
    resident = largest = 0
    for pid in group_members(pgid):
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                size, rss = handle.read().split()[:2]
        except (OSError, ValueError):
            continue
        resident += int(rss) * page
        largest = max(largest, int(size) * page)
    return resident, largest
