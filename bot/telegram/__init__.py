"""The Telegram front end: python-telegram-bot 22 wired to the same ``CommandRouter`` as the console.

``transport.run_telegram`` builds and runs the application; ``auth`` is the allow-list every update
passes first; ``handlers`` holds the thin command and button handlers; ``alerts`` delivers the
event feed (``bot/service/feed.py``) to the allowed chats, one cursor per chat.
"""
