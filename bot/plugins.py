"""The plugin manager: hookspecs, built-in plugins, third-party entry points.

A broken third-party plugin (an import error, a hook that raises, a bad class) is reported
in ``Registry.errors`` and skipped; every other strategy still loads.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from bot import hookspecs
from bot.strategy import Strategy, StrategyError, parse_params

log = logging.getLogger(__name__)

BUILTIN_PLUGINS = (
    "plugins.supertrend",
    "plugins.ma_cross",
    "plugins.rsi",
    "plugins.bollinger",
    "plugins.donchian",
    "plugins.macd",
)


@dataclass
class Registry:
    """Installed strategy classes by name, and what failed to load."""

    strategies: dict[str, type[Strategy]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # strategy name -> plugin that provided it

    def create(self, spec: str) -> Strategy:
        """Build a configured strategy from ``name`` or ``name:k=v,k=v``."""
        name, _, args = spec.strip().partition(":")
        name = name.strip()
        cls = self.strategies.get(name)
        if cls is None:
            known = ", ".join(sorted(self.strategies)) or "none"
            raise StrategyError(f"unknown strategy {name!r} (installed: {known})")
        return cls(**parse_params(args))

    def create_all(self, specs: list[str]) -> tuple[list[Strategy], list[str]]:
        """Build every spec that is valid; return the strategies and one error line per bad spec."""
        built: list[Strategy] = []
        errors: list[str] = []
        for spec in specs:
            try:
                built.append(self.create(spec))
            except StrategyError as exc:
                errors.append(f"strategy {spec!r} not loaded: {exc}")
        return built, errors


def get_plugin_manager(
    load_entry_points: bool = True, plugins: Iterable[object] = ()
) -> tuple[pluggy.PluginManager, list[str]]:
    """Build the manager: specs, built-ins, ``plugins`` (objects, e.g. from tests or an embedding
    program), then entry points of the group ``tradebot``."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    errors: list[str] = []
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    for plugin in plugins:
        pm.register(plugin)
    if load_entry_points:
        # pluggy's load_setuptools_entrypoints stops at the first broken plugin; load one by one.
        for ep in entry_points(group=hookspecs.PROJECT):
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                pm.register(ep.load(), name=ep.name)
            except Exception as exc:  # a third party's import error must not stop the bot
                errors.append(f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}")
    pm.check_pending()
    return pm, errors


def load_registry(load_entry_points: bool = True, plugins: Iterable[object] = ()) -> Registry:
    pm, errors = get_plugin_manager(load_entry_points, plugins)
    registry = Registry(errors=errors)
    for impl in pm.hook.tradebot_strategies.get_hookimpls():
        # Through pluggy (pm.hook, keyword arguments), one plugin at a time: a plugin that raises
        # is reported and the others still load, and each class is credited to its plugin.
        others = [p for p in pm.get_plugins() if p is not impl.plugin]
        call = pm.subset_hook_caller("tradebot_strategies", remove_plugins=others)
        try:
            results: list[Any] = call()
        except Exception as exc:
            registry.errors.append(f"plugin {impl.plugin_name!r}: tradebot_strategies() raised {exc!r}")
            continue
        for classes in results:
            for cls in classes or []:
                _add(registry, cls, impl.plugin_name)
    for line in registry.errors:
        log.warning("%s", line)
    return registry


def _add(registry: Registry, cls: Any, plugin: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Strategy)) or not getattr(cls, "name", ""):
        registry.errors.append(f"plugin {plugin!r}: {cls!r} is not a named Strategy subclass")
        return
    if cls.name in registry.strategies:
        registry.errors.append(
            f"plugin {plugin!r}: strategy name {cls.name!r} already provided by {registry.sources[cls.name]!r}"
        )
        return
    try:
        cls()  # defaults must be valid
    except Exception as exc:
        registry.errors.append(f"plugin {plugin!r}: strategy {cls.name!r} has invalid defaults: {exc}")
        return
    registry.strategies[cls.name] = cls
    registry.sources[cls.name] = plugin
