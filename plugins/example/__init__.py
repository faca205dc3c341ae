"""The example plugin, image `localhost/noetl/example-plugin:1.0`.

Run as ``python -m plugins.example --registration``; see ``__main__`` for the
registration protocol it follows.
"""
