"""Backtests from the dashboard: a job is one ``tradebot backtest`` run in a worker process.

``jobs`` turns the page's form (``JobRequest``) into the ``tradebot backtest`` command line and
checks it with the command's own checks; ``sources`` lists what a job may read (the shipped
samples, the local bar store, CSV files under ``TRADEBOT_RESEARCH_CSV_DIR``) and refuses anything
else; ``worker`` is the process that runs the job (lower priority, a memory cap, a progress
channel); ``supervisor`` starts, follows, cancels and kills it from the bot's process, one job at
a time, and keeps each job's files in a folder of its own under ``TRADEBOT_RESEARCH_DIR``.
"""
