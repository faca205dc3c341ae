"""The JetStream source: a durable pull consumer feeding one HTTP sink.

Run as ``python -m sources.jetstream``, configured by environment as a
Knative ContainerSource configures its container (see :mod:`.config`). Each
message becomes a binary-mode HTTP CloudEvent POSTed to ``K_SINK``; the
answer decides whether it is acked, retried later or dead-lettered.
"""
