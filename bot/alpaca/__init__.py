"""Alpaca: the broker and the market data behind tradebot's interfaces, one job per module.

- ``http``: hardening of alpaca-py's REST clients (timeouts, no silent resends, rate limits,
  the per-cycle stall budget);
- ``convert``: alpaca-py objects and Alpaca's JSON to tradebot's domain types;
- ``rules``: pure pre-trade checks (what Alpaca would refuse, and why);
- ``fills``: the fill ledger (activities and stream, one id per execution, until acknowledged);
- ``protect``: stops and targets (placing them, putting them back, the crypto guard);
- ``broker``: ``AlpacaBroker``, the ``Broker`` interface;
- ``data``: ``AlpacaBarSource``, bars and latest prices;
- ``streams``: the live market-data and trading streams on the bot's event loop;
- ``setup``: building all of it from settings.
"""
