"""Sweeps and walk-forward runs on a Dask cluster: a ``LocalCluster`` with two worker processes on
127.0.0.1. The same results as local processes, a worker killed mid-sweep costs only its tasks,
and workers running other code are refused before any work starts."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")  # the dev extra installs it; CI runs these

from bot.backtest import sweep  # noqa: E402
from bot.backtest.cluster import ClusterError, connect, run_on_cluster  # noqa: E402
from bot.backtest.engine import FillSettings  # noqa: E402
from bot.backtest.sweep import SweepJob  # noqa: E402
from bot.backtest.walkforward import Span, walk_forward  # noqa: E402
from bot.bars import NS, Bars  # noqa: E402
from plugins.supertrend import SupertrendStrategy  # noqa: E402
from tests.slow_strategy import SlowSupertrend  # noqa: E402

PPY = 525_600.0


def minute_bars(n: int, seed: int = 3) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.random(n) * 0.002)
    low = np.minimum(open_, close) * (1 - rng.random(n) * 0.002)
    return Bars(
        1_704_067_200 * NS + np.arange(n, dtype=np.int64) * 60 * NS, open_, high, low, close, np.ones(n)
    )


def local_cluster(**config):  # type: ignore[no-untyped-def]
    import dask

    with dask.config.set(config):
        return distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
        )


@pytest.fixture(scope="module")
def cluster():
    c = local_cluster()
    yield c
    c.close()


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_sweep_ranks_exactly_as_local_processes(cluster):
    bars = minute_bars(20_000)
    combos = sweep.combinations(sweep.parse_grid(["period=5..12", "multiplier=1.5,2,3"]))
    settings = FillSettings(commission=0.0005)
    local = sweep.run_sweep(bars, SupertrendStrategy, combos, settings, periods_per_year=PPY, workers=1)
    remote = sweep.run_sweep(
        bars, SupertrendStrategy, combos, settings, periods_per_year=PPY, cluster=cluster.scheduler_address
    )
    assert remote == local
    assert sweep.rank(remote, "sharpe") == sweep.rank(local, "sharpe")


def test_a_walk_forward_run_is_the_same_on_the_cluster(cluster):
    bars = minute_bars(6_000)
    combos = sweep.combinations(sweep.parse_grid(["period=5..8", "multiplier=2,3"]))
    args = (bars, SupertrendStrategy, combos, FillSettings(), Span(2_000, ""), Span(1_000, ""))
    local = walk_forward(*args, rank_by="sortino", periods_per_year=PPY, workers=1)
    remote = walk_forward(*args, rank_by="sortino", periods_per_year=PPY, cluster=cluster.scheduler_address)
    assert [w.params for w in remote.windows] == [w.params for w in local.windows]
    assert np.array_equal(remote.sim.equity, local.sim.equity) and remote.stats == local.stats


def test_a_calendar_walk_forward_writes_the_same_bytes_on_the_cluster(cluster, tmp_path):
    """Calendar windows over bars with gaps (no bars at weekends): the local run and the cluster's
    write the same JSON, byte for byte (issue 20: the stitched curve once held uninitialised memory)."""
    from bot.backtest.walkforward import parse_spans
    from bot.backtest.walkforward_report import write_json
    from tests.test_walkforward_exact import hourly_forex

    bars = hourly_forex("2024-01-01", "2024-03-01")
    combos = sweep.combinations(sweep.parse_grid(["period=5..8", "multiplier=2,3"]))
    args = (bars, SupertrendStrategy, combos, FillSettings(), *parse_spans("2w/1d"))
    local = walk_forward(*args, rank_by="sharpe", periods_per_year=6_240.0, workers=1)
    remote = walk_forward(
        *args, rank_by="sharpe", periods_per_year=6_240.0, cluster=cluster.scheduler_address
    )
    write_json(local, bars.time, tmp_path / "local.json")
    write_json(remote, bars.time, tmp_path / "remote.json")
    assert (tmp_path / "local.json").read_bytes() == (tmp_path / "remote.json").read_bytes()
    assert np.isfinite(local.sim.equity).all() and (local.sim.equity > 0).all()
    trades = local.sim.trades
    assert (trades[1:, 0] > trades[:-1, 1]).all()  # entry after the previous exit: no trade twice


def test_a_worker_killed_mid_sweep_costs_only_its_tasks(cluster):
    bars = minute_bars(5_000)
    combos = sweep.combinations(sweep.parse_grid(["period=3..26", "multiplier=2,3"]))  # 48 runs of >= 50 ms
    settings = FillSettings()
    expected = sweep.run_sweep(bars, SupertrendStrategy, combos, settings, periods_per_year=PPY, workers=1)
    client = distributed.Client(cluster, set_as_default=False)
    try:
        pids = client.run(os.getpid)
        client.get_task_stream()  # the scheduler records every task run from now on
        started = time.time()
        result: dict[str, object] = {}

        def run() -> None:
            try:
                result["rows"] = sweep.run_sweep(
                    bars,
                    SlowSupertrend,
                    combos,
                    settings,
                    periods_per_year=PPY,
                    cluster=cluster.scheduler_address,
                )
            except Exception as exc:  # pragma: no cover - reported by the assertion below
                result["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        scheduler = cluster.scheduler

        def busy_worker():  # type: ignore[no-untyped-def]
            done = [
                ts for key, ts in scheduler.tasks.items() if "run_batch" in str(key) and ts.state == "memory"
            ]
            if len(done) < 2:
                return None
            for address, ws in scheduler.workers.items():
                if any("run_batch" in str(ts.key) for ts in ws.processing):
                    return address
            return None

        victim = wait_for(busy_worker, what="two batches done and one running")
        os.kill(pids[victim], signal.SIGKILL)
        thread.join(timeout=180)
        assert not thread.is_alive() and "error" not in result, result.get("error")
        assert [(r.params, r.stats) for r in result["rows"]] == [  # type: ignore[union-attr]
            (r.params, r.stats) for r in expected
        ]
        runs = [t for t in client.get_task_stream(start=started) if "run_batch" in str(t["key"])]
        by_key: dict[str, list[str]] = {}
        for t in sorted(runs, key=lambda t: t["startstops"][0]["start"]):
            by_key.setdefault(str(t["key"]), []).append(t["worker"])
        assert len(by_key) > 2  # every batch finished
        # A batch ran twice only when its first run was on the dead worker (its result died with it);
        # the survivor's work was never repeated.
        repeated = {key: workers for key, workers in by_key.items() if len(workers) > 1}
        assert all(workers[0] == victim for workers in repeated.values()), repeated
        assert len(repeated) < len(by_key)
        wait_for(lambda: len(scheduler.workers) == 2, what="the nanny to restart the worker")
    finally:
        client.close()


def test_a_batch_that_kills_its_workers_ends_the_run_with_one_line():
    # The scheduler gives up on a task after its worker died this many times (Dask's default: 3).
    fragile = local_cluster(**{"distributed.scheduler.allowed-failures": 0})
    try:
        bars = minute_bars(2_000)
        combos = sweep.combinations(sweep.parse_grid(["period=3..18"]))
        client = distributed.Client(fragile, set_as_default=False)
        pids = client.run(os.getpid)
        failure: dict[str, BaseException] = {}

        def run() -> None:
            try:
                sweep.run_sweep(
                    bars, SlowSupertrend, combos, FillSettings(), periods_per_year=PPY,
                    cluster=fragile.scheduler_address,
                )  # fmt: skip
            except BaseException as exc:
                failure["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        scheduler = fragile.scheduler
        victim = wait_for(
            lambda: next(
                (
                    a
                    for a, ws in scheduler.workers.items()
                    if any("run_batch" in str(t.key) for t in ws.processing)
                ),
                None,
            ),
            what="a batch running",
        )
        os.kill(pids[victim], signal.SIGKILL)
        thread.join(timeout=120)
        client.close()
        error = failure.get("error")
        assert isinstance(error, ClusterError), error
        assert "died with every worker that ran it" in str(error) and "\n" not in str(error)
    finally:
        fragile.close()


def test_workers_running_other_code_are_refused_before_any_work(tmp_path):
    preload = tmp_path / "other_tradebot.py"
    preload.write_text(
        "import bot\n\nbot.__version__ = '0.0.1-other'  # as if another release were installed\n"
    )
    other = local_cluster(**{"distributed.worker.preload": [str(preload)]})
    try:
        bars = minute_bars(1_000)
        job = SweepJob(SupertrendStrategy, FillSettings(), PPY)
        with pytest.raises(ClusterError) as refused:
            run_on_cluster(other.scheduler_address, bars, job, [({"period": "5"}, 0, len(bars))])
        message = str(refused.value)
        assert "has tradebot 0.0.1-other, this client 0.1.0" in message and "\n" not in message
        assert not other.scheduler.task_prefixes  # nothing was scattered, nothing was mapped
        # and through the command: one line, exit status 1
        run = subprocess.run(
            [sys.executable, "-m", "bot", "backtest", "--strategy", "supertrend", "--symbol", "BTC/USD",
             "--start", "2024-01-01", "--end", "2024-01-03", "--source", "synthetic", "--param", "period=5..7",
             "--cluster", other.scheduler_address],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_"))},
        )  # fmt: skip
        assert run.returncode == 1
        assert run.stderr.startswith("tradebot backtest: error: cluster: the cluster runs other code")
        assert len(run.stderr.strip().splitlines()) == 1
    finally:
        other.close()


def test_the_command_uses_the_scheduler_from_the_environment(cluster, tmp_path):
    args = [
        sys.executable, "-m", "bot", "backtest", "--strategy", "supertrend", "--symbol", "ETH/USD",
        "--start", "2024-01-01", "--end", "2024-01-08", "--timeframe", "5m", "--source", "synthetic",
        "--param", "period=6..9", "--param", "multiplier=2,3",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "TRADEBOT_"))}
    local = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    remote = subprocess.run(
        args, capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**env, "TRADEBOT_DASK_SCHEDULER": cluster.scheduler_address},
    )  # fmt: skip
    assert local.returncode == remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout


def test_an_unreachable_scheduler_is_one_line():
    with pytest.raises(ClusterError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        connect("tcp://127.0.0.1:9", timeout=1.0)


def test_the_slow_strategy_is_supertrend():
    bars = minute_bars(500)
    assert np.array_equal(
        SlowSupertrend(period=7).compute(bars).signal, SupertrendStrategy(period=7).compute(bars).signal
    )
    assert Path(__file__).with_name("slow_strategy.py").is_file()


def _page_faults_of_twenty_backtests() -> int:
    """On a worker: minor page faults while a few window-long arrays are allocated and freed 20 times."""
    import resource

    def backtest() -> None:
        arrays = [np.ones(400_000) for _ in range(6)]
        del arrays

    backtest()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        backtest()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
    reason="the malloc thresholds are glibc's",
)
def test_a_dask_worker_keeps_freed_memory_once_it_runs_a_batch():
    """As the local pool's workers do (bot/backtest/heap.py): without it, every backtest on a
    worker faulted its arrays' pages in again, and the cluster ran 1.55x the local time."""
    from bot.backtest.cluster import run_batch

    with local_cluster() as fresh, distributed.Client(fresh, set_as_default=False) as client:
        before = client.run(_page_faults_of_twenty_backtests)
        assert client.run(run_batch, [], None, None) == {worker: [] for worker in before}
        after = client.run(_page_faults_of_twenty_backtests)
    assert all(faults > 50_000 for faults in before.values()), before  # glibc's default: handed back
    assert all(faults < 5_000 for faults in after.values()), after


def test_doctor_reports_the_scheduler_answering_with_its_workers(cluster):
    from bot.config import Settings
    from bot.doctor import check_dask

    settings = Settings.from_mapping({"TRADEBOT_DASK_SCHEDULER": cluster.scheduler_address})
    (check,) = check_dask(settings)
    assert (check.area, check.level) == ("research", "ok")
    assert check.message == f"Dask scheduler at {cluster.scheduler_address} answered: 2 workers"
    assert check_dask(Settings.from_mapping({})) == []  # not set: nothing to report
