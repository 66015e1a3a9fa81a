"""The web front end: dashboard pages, ``/api/v1``, the live WebSocket, ``/healthz``, webhooks.

One ASGI app (FastAPI) served by uvicorn on ``tradebot run``'s own event loop, bound before the
trading lease. Like Telegram and the console it is a thin transport: reads go through
``TradingService``'s public methods, actions through the same ``CommandRouter``.
"""
