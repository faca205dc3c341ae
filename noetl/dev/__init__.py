"""The stack on one machine: what runs (stack), how (supervisor), and a demo.

``noetl dev`` and ``noetl demo`` are built on these, and so are the tests
that need every part running.
"""
