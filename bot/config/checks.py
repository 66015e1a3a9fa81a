"""Checks that need more than the variables' text: the installed strategy plugins.

``strategies(settings)`` builds every configured strategy, or raises ``ConfigError`` naming
``TRADEBOT_STRATEGIES`` (an unknown name, a parameter out of its bounds) or
``TRADEBOT_HISTORY_BARS`` (too short for a strategy's warm-up). ``build_app`` and
``tradebot doctor`` both call it, so they agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.config.loading import ConfigError, came_from, shown_value
from bot.config.model import Settings

if TYPE_CHECKING:
    from bot.plugins import Registry
    from bot.strategy import Strategy


def strategies(settings: Settings, registry: Registry | None = None) -> list[Strategy]:
    from bot.plugins import load_registry
    from bot.strategy import StrategyError

    registry = registry or load_registry()
    built: list[Strategy] = []
    problems: list[str] = []
    for spec in settings.tradebot_strategies:
        try:
            built.append(registry.create(spec))
        except StrategyError as exc:
            problems.append(
                f"TRADEBOT_STRATEGIES={shown_value('TRADEBOT_STRATEGIES', spec)} is invalid: {exc}; "
                "`tradebot strategies` lists what is allowed"
                + came_from(settings.source("TRADEBOT_STRATEGIES"))
            )
    if problems:
        raise ConfigError(problems)
    bars = settings.tradebot_history_bars
    for strategy in built:
        needed = strategy.warmup + 1
        if bars < needed:
            raise ConfigError(
                [
                    f"TRADEBOT_HISTORY_BARS={shown_value('TRADEBOT_HISTORY_BARS', str(bars))} is invalid: "
                    f"{strategy.label} needs {needed} bars of history; allowed {needed} to 10000"
                    + came_from(settings.source("TRADEBOT_HISTORY_BARS"))
                ]
            )
    return built
