"""Order routing: one interface (``base.Broker``), a simulated exchange and Alpaca behind it."""
