"""What one backtest produced: the simulation, its statistics and what it ran with.

Its own module so that the runner, the report, the sweep and the plot all import it without
importing each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bot.backtest.engine import FillSettings, Simulation
from bot.bars import Bars
from bot.strategy import Strategy, StrategyOutput


@dataclass(frozen=True, slots=True)
class Stats:
    final_equity: float
    return_pct: float
    sharpe: float
    sortino: float
    max_drawdown_pct: float
    win_rate: float
    profit_factor: float  # inf with gains and no losses
    exposure_pct: float
    n_trades: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class BacktestResult:
    strategy: Strategy
    bars: Bars
    output: StrategyOutput
    sim: Simulation
    stats: Stats
    settings: FillSettings
    source: str = "data"
    timeframe_label: str = ""  # empty when the bars have no regular spacing

    @property
    def settings_line(self) -> str:
        s = self.settings
        sizing = (
            f"{s.fixed_qty:g} units per entry"
            if s.fixed_qty
            else f"risk sizing ({s.risk.risk_per_trade_pct:g}% risked per trade, "
            f"at most {s.risk.max_position_pct:g}% of equity)"
        )
        stop = f"{s.stop_loss_pct:g}%" if s.stop_loss_pct else "none"
        target = f"{s.take_profit_pct:g}%" if s.take_profit_pct else "none"
        return (
            f"next bar's open, long only; stop {stop}, target {target}; {sizing}; "
            f"commission {s.commission:g}, slippage {s.slippage:g}; cash {s.cash:,.2f}"
        )
