"""Alpaca: the broker and the market data behind tradebot's interfaces, one job per module.

- ``http``: hardening of alpaca-py's REST clients (timeouts, no silent resends, rate limits,
  the per-cycle stall budget);
- ``convert``: alpaca-py objects and Alpaca's JSON to tradebot's domain types;
- ``rules``: pure pre-trade checks (what Alpaca would refuse, and why);
- ``fills``: the fill ledger (activities and stream, one id per execution, until acknowledged);
- ``venue``: the trading REST API as the rest reads and writes it (retried reads, caches, the
  account's flags, the order memory, one submit sent once, ``status=all`` reads);
- ``desk``: what Alpaca would refuse, said before sending; the alpaca-py request;
- ``holdings``: the invariant (every position has a working stop for its whole quantity), read
  from Alpaca's orders, no I/O;
- ``protect``: protective order requests and placing them under ids of their attempt;
- ``protection``: release, restore, re-protect, the crypto guards, the emergency exit;
- ``updates``: executions and order statuses since the last sync;
- ``broker``: ``AlpacaBroker``, the ``Broker`` interface, a front over those;
- ``data``: ``AlpacaBarSource``, bars and latest prices;
- ``streams``: the live market-data and trading streams on the bot's event loop;
- ``setup``: building all of it from settings.
"""
