"""Built-in strategy plugins, registered by the host (see ``bot.plugins.BUILTIN_PLUGINS``)."""
