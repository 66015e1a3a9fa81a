"""The console a trader reads all day (issue 18, point 4), at a pseudo-terminal with stdin left open.

Alerts and `/orders all` show times (and the id a `/cancel` needs); `/cancel` with no id drops
the waiting question; a mistyped command gets "did you mean"; an expired question says it expired
and what it was; a question asked again after the state changed shows its own /confirm.
"""

from __future__ import annotations

import re
import time

from tests.terminal import CTRL_C, Terminal, environment

TIME = r"\d\d:\d\d:\d\d"


def test_a_day_at_the_console(tmp_path):
    env = environment(
        tmp_path,
        # Bands 100 ATRs wide never flip: only the orders typed here trade.
        TRADEBOT_STRATEGIES="supertrend:period=10,multiplier=100",
        TRADEBOT_CONFIRM_SECONDS="5",
    )
    env["TRADEBOT_SYMBOLS"] = "AAPL,MSFT"
    term = Terminal(tmp_path, env, "run")
    try:
        term.wait_for("Type /help")
        screen = term.wait_for("ALERT tradebot started")
        assert re.search(rf"^{TIME} ALERT tradebot started", screen, re.M), screen

        term.type("/posiitons\n")
        term.wait_for("Unknown command /posiitons: did you mean /positions? Send /help for the list.")

        term.type("/buy AAPL 2\n")
        term.wait_for("Confirm: buy 2 AAPL at market?")
        term.type("/cancel\n")
        term.wait_for("Canceled: buy 2 AAPL at market.")

        term.type("/buy AAPL 3\n")
        term.wait_for("Confirm: buy 3 AAPL at market?")
        term.wait_for("Send /confirm ")
        time.sleep(6)  # TRADEBOT_CONFIRM_SECONDS=5
        term.type("/confirm\n")
        term.wait_for("Expired: buy 3 AAPL at market was not done. Send the command again.")

        term.type("/buy AAPL 1\n")
        term.wait_for("Confirm: buy 1 AAPL at market?")
        term.type("/confirm\n")
        term.wait_for("Done: Bought 1 AAPL at ")
        screen = term.wait_for("ALERT Bought 1 AAPL")
        assert re.search(rf"^{TIME} ALERT Bought 1 AAPL at ", screen, re.M), screen
        assert re.search(rf"^{TIME} ALERT Buy 1 AAPL placed \(.*\) id tb-manual-\w+", screen, re.M), screen

        # A question answered after the state changed is asked again, with its own /confirm line.
        term.type("/risk set max_open_trades 3\n")
        screen = term.wait_for("Confirm: set max_open_trades from 5 to 3?")
        first = re.findall(r"Send /confirm (\w+) within 5s\.", screen)[-1]
        term.type("/risk set max_open_trades 4\n")
        screen = term.wait_for("Confirm: set max_open_trades from 5 to 4?")
        second = re.findall(r"Send /confirm (\w+) within 5s\.", screen)[-1]
        term.type(f"/confirm {second}\n")
        term.wait_for("Risk limit max_open_trades is now 4.")
        term.type(f"/confirm {first}\n")
        screen = term.wait_for("Confirm: set max_open_trades from 4 to 3?")
        assert "Not done: things changed since you were asked to set max_open_trades from 5 to 3.\n" in screen
        again = re.findall(r"Send /confirm (\w+) within 5s\.", screen)[-1]
        assert again not in (first, second)
        term.type(f"/confirm {again}\n")
        term.wait_for("Risk limit max_open_trades is now 3.")

        term.type("/orders all\n")
        screen = term.wait_for("Recent orders (placed, simulated clock, UTC):")
        assert re.search(rf"^\d\d-\d\d {TIME} buy 1 AAPL filled @ [\d,.]+ \[manual\]$", screen, re.M), screen

        term.type(CTRL_C)
        assert term.wait_exit(60) == 130
    finally:
        term.close()
    assert "Traceback" not in term.screen
