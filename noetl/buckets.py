"""Reading a key-value bucket whole: its live keys, and one key's revisions.

nats-py's ``KeyValue.keys`` and ``KeyValue.history`` replay the bucket through
a push consumer and decide that the replay is over from a count taken while
messages may still be on their way, so now and then they answer "no keys" for
a bucket that has some (nats-io/nats.py#842). These replay through a pull
consumer instead: nothing is delivered before it is asked for, so the pending
count read when the consumer is made says how many messages the answer holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KV_DEL, KV_MARKER_REASON, KV_OP, KV_PURGE

from noetl import topology

log = logging.getLogger(__name__)

#: Messages asked for in one pull.
BATCH = 256
#: How long one pull waits for messages the pending count promised.
PULL_WAIT = 5.0
#: The server drops a replay's consumer after this much idle time, should
#: deleting it fail.
IDLE = 30.0


@dataclass(frozen=True)
class Revision:
    """One stored revision of a key."""

    key: str
    value: bytes
    revision: int
    #: ``"DEL"`` or ``"PURGE"`` for a removal, None for a value.
    operation: str | None
    created: datetime


async def keys(js: JetStreamContext, bucket: str) -> list[str]:
    """Every key of ``bucket`` that holds a value, in stream order."""
    messages = await _replay(
        js, bucket, ">", api.DeliverPolicy.LAST_PER_SUBJECT, headers_only=True
    )
    prefix = topology.bucket_subject(bucket, "")
    found: dict[str, None] = {}
    for msg in messages:
        key = msg.subject[len(prefix) :]
        if _removed(msg):
            found.pop(key, None)
        else:
            found[key] = None
    return list(found)


async def history(js: JetStreamContext, bucket: str, key: str) -> list[Revision]:
    """Every revision the bucket still holds for ``key``, oldest first."""
    messages = await _replay(js, bucket, key, api.DeliverPolicy.ALL)
    return [
        Revision(
            key=key,
            value=msg.data,
            revision=msg.metadata.sequence.stream,
            operation=(msg.headers or {}).get(KV_OP),
            created=msg.metadata.timestamp,
        )
        for msg in messages
    ]


async def _replay(
    js: JetStreamContext,
    bucket: str,
    key: str,
    policy: api.DeliverPolicy,
    *,
    headers_only: bool = False,
) -> list[Msg]:
    """The messages of ``key`` (a key or a wildcard) that a consumer made now sees."""
    stream = topology.bucket_stream(bucket)
    config = api.ConsumerConfig(
        deliver_policy=policy,
        ack_policy=api.AckPolicy.NONE,
        headers_only=headers_only,
        inactive_threshold=IDLE,
        mem_storage=True,
        num_replicas=1,
    )
    subject = topology.bucket_subject(bucket, key)
    sub = await js.pull_subscribe(subject, stream=stream, config=config)
    name = ""
    try:
        info = await sub.consumer_info()
        name = info.name
        left = info.num_pending or 0
        messages: list[Msg] = []
        while left > 0:
            try:
                batch = await sub.fetch(min(left, BATCH), timeout=PULL_WAIT)
            except TimeoutError:  # nats-py's is a subclass
                # What was pending went away (a purge, an age limit) before
                # it was delivered; what we have is the answer.
                break
            messages.extend(batch)
            left = min(left - len(batch), batch[-1].metadata.num_pending or 0)
        return messages
    finally:
        await sub.unsubscribe()
        if name:
            try:
                await js.delete_consumer(stream, name)
            except Exception as exc:  # it goes by itself once idle
                log.debug("could not delete replay consumer %s: %s", name, exc)


def _removed(msg: Msg) -> bool:
    """A delete or purge marker, ours or one the server placed (2.11+)."""
    headers = msg.headers or {}
    return headers.get(KV_OP) in (KV_DEL, KV_PURGE) or KV_MARKER_REASON in headers
