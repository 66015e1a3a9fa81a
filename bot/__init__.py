"""tradebot: a chat-ops trading bot for Alpaca, with strategies as pluggy plugins."""

__version__ = "0.1.0"
