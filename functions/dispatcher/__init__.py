"""The dispatcher: turns events into commands and decides outcomes."""
