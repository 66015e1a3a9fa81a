"""Strategy plugins: built-ins, third-party packages through the `tradebot` entry-point group,
and broken plugins reported without stopping the rest."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot import hookspecs
from bot.hookspecs import hookimpl
from bot.plugins import get_plugin_manager, load_registry
from bot.strategy import Strategy, StrategyError, StrategyOutput

PLUGIN = """
import numpy as np
from bot.hookspecs import hookimpl
from bot.strategy import Param, Strategy, StrategyOutput


class AlwaysIn(Strategy):
    name = "always_in"
    description = "Buys on every bar (a test strategy)."
    params = {"size": Param(1, min=1, max=10, help="unused")}

    def compute(self, bars):
        return StrategyOutput(signal=np.ones(len(bars), dtype=np.int8))


class NoName(Strategy):
    def compute(self, bars):
        return StrategyOutput(signal=np.zeros(len(bars), dtype=np.int8))


@hookimpl
def tradebot_strategies():
    return [AlwaysIn, NoName]
"""


def install_fake_distribution(root: Path) -> Path:
    """Lay out a package and its .dist-info the way pip would: importlib.metadata finds it on sys.path."""
    (root / "tb_thirdparty").mkdir(parents=True)
    (root / "tb_thirdparty" / "__init__.py").write_text(PLUGIN)
    info = root / "tb_thirdparty-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tb-thirdparty\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[tradebot]\nthirdparty = tb_thirdparty\nbroken = tb_does_not_exist.strategies\n"
    )
    return root


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    site = install_fake_distribution(tmp_path / "site")
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).parents[1])]),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "ALPACA_API_KEY": "",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=environ,
    )


def test_builtin_supertrend_is_listed_with_parameters():
    registry = load_registry(load_entry_points=False)
    assert "supertrend" in registry.strategies
    strategy = registry.create("supertrend:period=7,multiplier=2.5")
    assert strategy.values == {"period": 7, "multiplier": 2.5}
    assert strategy.label == "supertrend(period=7,multiplier=2.5)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuch", "unknown strategy 'nosuch'"),
        ("supertrend:period=0", "below its minimum"),
        ("supertrend:period=2.5", "whole number"),
        ("supertrend:length=3", "unknown parameter length"),
        ("supertrend:period", "malformed parameter"),
        ("supertrend:period=10,period=12", "parameter period is given twice"),
    ],
)
def test_bad_strategy_specs_are_explained(spec, message):
    registry = load_registry(load_entry_points=False)
    with pytest.raises(StrategyError, match=message):
        registry.create(spec)
    built, errors = registry.create_all([spec, "supertrend"])
    assert [s.name for s in built] == ["supertrend"] and message.split("'")[0] in errors[0]


def test_third_party_strategy_is_listed_and_broken_plugins_are_reported(tmp_path):
    result = run(tmp_path, "strategies")
    assert result.returncode == 0, result.stderr
    assert "always_in  (from thirdparty)" in result.stdout
    assert "size = 1" in result.stdout
    assert "supertrend  (from plugins.supertrend)" in result.stdout
    assert re.search(r"plugin 'broken' .* failed to load: ModuleNotFoundError", result.stderr)
    assert "is not a named Strategy subclass" in result.stderr


def test_third_party_strategy_trades(tmp_path):
    result = run(tmp_path, "tick", TRADEBOT_STRATEGIES="always_in", TRADEBOT_SYMBOLS="AAPL")
    assert result.returncode == 0, result.stderr
    assert "Strategies: always_in(size=1)" in result.stdout
    assert "Done: Bought" in result.stdout or "Placed: Buy" in result.stdout, result.stdout


class Flat(Strategy):
    name = "flat_for_tests"
    description = "Never trades (a plugin registered in process)."

    def compute(self, bars):
        return StrategyOutput(signal=np.zeros(len(bars), dtype=np.int8))


class InProcessPlugin:
    """A plugin object implementing the hooks, registered directly (as a test or an embedding
    program would): its hooks are called through pluggy like any other's."""

    @hookimpl
    def tradebot_strategies(self):
        return [Flat]


class RaisingPlugin:
    @hookimpl
    def tradebot_strategies(self):
        raise RuntimeError("broken plugin")


def test_hooks_are_called_through_pluggy_and_a_raising_plugin_is_reported():
    registry = load_registry(load_entry_points=False, plugins=[InProcessPlugin(), RaisingPlugin()])
    assert registry.strategies["flat_for_tests"] is Flat
    assert "supertrend" in registry.strategies  # the built-ins still load
    [error] = registry.errors
    assert "tradebot_strategies() raised RuntimeError('broken plugin')" in error


def test_every_hookspec_is_implemented_by_a_test():
    """As datasette does: a new hook without a test fails here. Found by introspection: every
    hookspec of the plugin manager against the functions the test modules mark with ``hookimpl``
    (a hook name in a string does not count), each registered to check its signature."""
    pm, _ = get_plugin_manager(load_entry_points=False)
    specs = {name for name, caller in vars(pm.hook).items() if getattr(caller, "spec", None) is not None}
    assert specs
    implemented: set[str] = set()
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        module = importlib.import_module(f"tests.{path.stem}")
        for owner in [module, *(v for v in vars(module).values() if isinstance(v, type))]:
            for name, value in vars(owner).items():
                if callable(value) and getattr(value, f"{hookspecs.PROJECT}_impl", None) is not None:
                    implemented.add(name)
    assert specs <= implemented, f"no test implements the hooks {sorted(specs - implemented)}"
    pm.register(InProcessPlugin())  # pluggy refuses an implementation whose arguments the spec lacks


def test_tick_refuses_to_start_with_an_unknown_strategy(tmp_path):
    result = run(tmp_path, "tick", TRADEBOT_STRATEGIES="supertrend;nosuch")
    assert result.returncode == 2
    [line] = [line for line in result.stderr.splitlines() if "TRADEBOT_STRATEGIES" in line]
    assert line.startswith(
        "tradebot: error: TRADEBOT_STRATEGIES='nosuch' is invalid: unknown strategy 'nosuch'"
    )
    installed = line.split("(installed: ", 1)[1].split(")", 1)[0].split(", ")
    assert installed == sorted(installed) and {"always_in", "supertrend", "sma_cross", "macd"} <= set(
        installed
    )
