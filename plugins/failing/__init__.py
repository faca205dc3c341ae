"""A plugin that cannot register, image `localhost/noetl/failing-plugin:1.0`.

Run as ``python -m plugins.failing --registration``: it exits non-zero
without reporting, which is how a broken plugin looks to the catalog.
"""
