"""Sweeps and walk-forward runs on an existing Dask distributed cluster.

``tradebot backtest ... --cluster tcp://HOST:8786`` (or ``TRADEBOT_DASK_SCHEDULER``) runs the same
tasks as the local process pool, through the same function (``bot.backtest.sweep.evaluate``):

1. connect to the scheduler, then ask every worker for its environment: Python, Dask, numpy,
   tradebot and a fingerprint of the backtest code and of the strategy's module. Any
   difference from this client is reported before any work starts (a worker running other code
   would give other results);
2. scatter the bars and the job once, to every worker (``broadcast``);
3. map the tasks in batches (a few per worker, so a batch is worth sending) and gather the
   results in task order: ranked exactly as a local run ranks them.

A worker that dies mid-run costs only its batches: the scheduler runs them again elsewhere (the
bars are on every worker). A batch that kills every worker it runs on (``allowed-failures``
times, 3 by default) ends the run with a one-line error. Dask is an optional extra: ``pip install 'tradebot[cluster]'``.
"""

from __future__ import annotations

import hashlib
import importlib
import platform
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.backtest import channel

if TYPE_CHECKING:
    from bot.backtest.sweep import BeforeStart, SweepJob, SweepRow, Task
    from bot.bars import Bars

# Seconds for the TCP connection, Dask's handshake and the scheduler's first answer together.
CONNECT_TIMEOUT = 15.0
BATCHES_PER_WORKER = 8
# The modules whose code decides a backtest's result, fingerprinted on both sides.
CODE = (
    "bot.backtest.engine",
    "bot.backtest.overfitting",
    "bot.backtest.report",
    "bot.backtest.sweep",
    "bot.bars",
    "bot.kernels",
    "bot.metrics",
    "bot.risk",
    "bot.strategy",
)


class ClusterError(Exception):
    """The cluster cannot run this job; the message is one line for the user."""


def run_on_cluster(
    address: str,
    bars: Bars,
    job: SweepJob,
    tasks: list[Task],
    *,
    progress: bool | None = None,
    before: BeforeStart | None = None,
) -> list[SweepRow]:
    """Every task on the cluster at ``address``, results in task order; ``before(bars, job,
    tasks)`` once the cluster has answered and runs this client's code."""
    client = connect(address)
    try:
        check_environment(client, job.cls.__module__)
        if before is not None:
            before(bars, job, tasks)
        return _run(client, bars, job, tasks, progress)
    finally:
        client.close()


def connect(address: str, timeout: float = CONNECT_TIMEOUT) -> Any:
    """A client of the scheduler at ``address`` (``tcp://HOST:PORT``), once ``probe`` has had it
    answer within ``timeout`` seconds; ``ClusterError`` otherwise."""
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError("--cluster needs Dask: pip install 'tradebot[cluster]'") from None
    probe(address, timeout)
    try:
        return Client(address, timeout=f"{timeout}s", set_as_default=False)
    except Exception as exc:  # it answered the probe a moment ago: gone, or not the same server
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {_said(exc)}") from None


def probe(address: str, timeout: float = CONNECT_TIMEOUT) -> dict[str, Any]:
    """The scheduler's identity, asked on a connection of its own: the TCP connection, Dask's
    handshake and the answer all within ``timeout`` seconds (a port that accepts and never
    answers held ``distributed.Client`` for good: its handshake has no time limit). No
    ``Client`` is built until this succeeds, so no client's finaliser prints anything.

    It runs on a daemon thread with an event loop of its own, waited for ``timeout`` plus a
    second: even a name lookup that hangs cannot hold the command."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        import asyncio

        started = time.monotonic()
        loop = asyncio.new_event_loop()
        try:
            # A plain connection first: a refused port is said at once (Dask retries it until the
            # timeout), and what is left of the timeout bounds Dask's connection and handshake.
            socket.create_connection(_host_port(address), timeout=timeout).close()
            left = max(timeout - (time.monotonic() - started), 0.1)
            outcome["identity"] = loop.run_until_complete(asyncio.wait_for(_identity(address, left), left))
        except BaseException as exc:  # reported by the caller, on its thread
            outcome["error"] = exc
        finally:
            loop.close()

    thread = threading.Thread(target=target, name="dask-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    error = outcome.get("error")
    if "identity" in outcome:
        identity = outcome["identity"]
        if isinstance(identity, dict) and identity.get("type") == "Scheduler":
            return identity
        raise ClusterError(f"{address} answered, but not as a Dask scheduler does")
    if thread.is_alive() or isinstance(error, TimeoutError):
        raise ClusterError(
            f"the Dask scheduler at {address} did not answer within {timeout:g} s "
            "(is a scheduler listening there, or another program?)"
        )
    if isinstance(error, OSError):  # refused, unreachable, closed (Dask's CommClosedError too)
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {_said(error)}")
    raise ClusterError(f"{address} answered, but not as a Dask scheduler does: {_said(error)}")


def _host_port(address: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` (as ``dask_address.scheduler_address`` writes it) -> (HOST, PORT)."""
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    return host.strip("[]"), int(port)


async def _identity(address: str, timeout: float) -> Any:
    from distributed.comm import connect as open_comm

    comm = await open_comm(address, timeout=timeout)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def _said(exc: BaseException | None) -> str:
    """An exception as one line (a garbled answer can make Dask raise anything)."""
    if exc is None:
        return "no answer"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def environment(strategy_module: str) -> dict[str, str]:
    """What decides whether a process computes the same results as this one."""
    import dask
    import distributed
    import numpy

    import bot

    return {
        "python": platform.python_version(),
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "numpy": numpy.__version__,
        "tradebot": bot.__version__,
        "backtest code": _fingerprint(CODE),
        f"strategy code ({strategy_module})": _fingerprint((strategy_module,)),
    }


def check_environment(client: Any, strategy_module: str) -> None:
    """Every worker's ``environment`` must equal this client's (and the scheduler's Dask too)."""
    mine = environment(strategy_module)
    workers = client.scheduler_info().get("workers", {})
    if not workers:
        raise ClusterError(f"the scheduler at {client.scheduler.address} has no workers")
    try:
        theirs = client.run(environment, strategy_module)
    except Exception as exc:
        raise ClusterError(
            f"the workers cannot run tradebot's code ({type(exc).__name__}: {exc}); "
            "install tradebot[cluster] and the strategy's plugin in the workers' environment"
        ) from None
    # The scheduler runs none of our code, only Dask's: its Dask and Python (major.minor) must match.
    scheduler = client.get_versions()["scheduler"]["packages"]
    here = {**mine, "python": _minor(mine["python"])}
    there = {**scheduler, "python": _minor(str(scheduler.get("python", "")))}
    differences = [
        f"scheduler has {name} {there.get(name)}, this client {here[name]}"
        for name in ("python", "dask", "distributed")
        if there.get(name) != here[name]
    ]
    for worker, env in sorted(theirs.items()):
        for name, value in mine.items():
            if env.get(name) != value:
                differences.append(f"worker {worker} has {name} {env.get(name)}, this client {value}")
    if differences:
        raise ClusterError(
            "the cluster runs other code than this client, so its results could differ: "
            + "; ".join(differences)
            + f". Install the same versions everywhere (tradebot {mine['tradebot']}, numpy {mine['numpy']}, "
            f"dask {mine['dask']}) and restart the workers"
        )


def _run(client: Any, bars: Bars, job: SweepJob, tasks: list[Task], progress: bool | None) -> list[SweepRow]:
    from distributed import KilledWorker, as_completed

    n_workers = len(client.scheduler_info().get("workers", {}))
    size = max(1, -(-len(tasks) // (n_workers * BATCHES_PER_WORKER)))
    batches = [tasks[i : i + size] for i in range(0, len(tasks), size)]
    bars_future = client.scatter(bars, broadcast=True, hash=False)
    job_future = client.scatter(job, broadcast=True, hash=False)
    futures = client.map(run_batch, batches, bars=bars_future, job=job_future, pure=False)
    sizes = {future.key: len(batch) for future, batch in zip(futures, batches, strict=True)}
    bar = _bar(len(tasks), progress)
    done = 0
    channel.tasks(done, len(tasks))
    try:
        for future in as_completed(futures, loop=client.loop):
            done += sizes[future.key]
            channel.tasks(done, len(tasks))
            if bar is not None:
                bar.update(sizes[future.key])
        results = client.gather(futures)
    except KilledWorker as exc:  # the scheduler gave up on a batch after it took down workers
        raise ClusterError(
            f"a batch of the sweep died with every worker that ran it ({exc}); "
            "the workers may be short of memory (each holds the bars once)"
        ) from None
    finally:
        if bar is not None:
            bar.close()
    return [row for batch in results for row in batch]


def run_batch(batch: list[Task], bars: Bars, job: SweepJob) -> list[SweepRow]:
    """Runs on a worker: ``sweep.evaluate`` for each task of the batch."""
    from bot.backtest.heap import keep_freed_memory
    from bot.backtest.sweep import evaluate

    keep_freed_memory()  # as the local pool's workers do (bot/backtest/heap.py); cheap to repeat
    return [evaluate(bars, job, task) for task in batch]


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _fingerprint(modules: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in modules:
        module = importlib.import_module(name)
        source = getattr(module, "__file__", None)
        digest.update(name.encode())
        digest.update(Path(source).read_bytes() if source else b"")
    return digest.hexdigest()[:12]


def _bar(total: int, enabled: bool | None):
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="sweep (cluster)", unit="run", file=sys.stderr)
