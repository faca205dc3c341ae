"""The same chain as a FastStream user would write it: handlers on JetStream.

Three services, one per function: ``python -m bench.peer dispatcher``,
``catalog`` or ``notifier``. Each subscribes with durable pull consumers
straight to the subjects its function's source would feed it, handles up to
16 messages at once (our source's default), and does that function's work
with the same core: the payload models, the registration record, the
CloudEvents binding, the timers. Where it does less than ours, the code says
so. There is no HTTP hop, so there is nothing to scale to zero either.
"""
