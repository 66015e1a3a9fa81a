"""Every hook a tradebot plugin can implement. This file is the plugin author's documentation.

A plugin is a module (or object) with functions decorated by ``hookimpl``. Built-in plugins
live in ``plugins/``; a third-party package makes its module known through the entry-point
group ``tradebot`` in its ``pyproject.toml``::

    [project.entry-points.tradebot]
    my_strategies = "my_package.strategies"

and ``my_package/strategies.py``::

    from bot.hookspecs import hookimpl
    from bot.strategy import Param, Strategy, StrategyOutput

    class MyStrategy(Strategy):
        name = "mine"
        params = {"length": Param(20, min=2, max=500, help="bars in the window")}
        def compute(self, bars): ...

    @hookimpl
    def tradebot_strategies():
        return [MyStrategy]

Hooks are called with keyword arguments, so a hook may declare only the parameters it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from bot.strategy import Strategy

PROJECT = "tradebot"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def tradebot_strategies() -> list[type[Strategy]]:
    """Return the strategy classes this plugin provides.

    Called once, when the host builds its plugin manager (at start-up and for
    ``tradebot strategies``). Each class subclasses ``bot.strategy.Strategy`` and has a
    unique ``name``: a second class with a name already taken is reported and ignored.
    Every plugin's list is collected; none wins over another.
    """
