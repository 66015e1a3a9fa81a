"""The Telegram front end: python-telegram-bot 22 wired to the same ``CommandRouter`` as the console.

``transport.run_telegram`` builds and runs the application; ``auth`` is the gate every update
passes first; ``handlers`` holds the thin command and button handlers; ``alerts`` delivers the
events table (the outbox) to the allowed chats and sends the daily summary.
"""
