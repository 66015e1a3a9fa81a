"""Market data: sources (synthetic, alpaca, polygon, csv), validation and the history cache."""
