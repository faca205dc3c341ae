"""The example plugin's registration run: report its input schema, then exit.

This is the protocol every plugin follows, in any language:

1. It is started with the one argument ``--registration`` and four variables
   in its environment: ``NATS_URL`` (where to report), ``PLUGIN_NAME``,
   ``REF_ID`` (the registration being answered) and ``IMAGE_URL``.
2. It publishes one message to JetStream on the subject
   ``catalog.schema.registration`` whose JSON data is
   ``{"eventType": "pluginSchemaRegistrationCompleted", "pluginName": ...,
   "refId": ..., "schema": {...}}``, the schema being a JSON Schema of the
   plugin's input. The header ``Nats-Msg-Id: <refId>:4.1:completed`` lets
   JetStream drop a repeat. CloudEvents ``ce-`` headers are welcome, not
   required; this plugin sends them (binary mode).
3. It waits for JetStream's acknowledgement and exits 0. A plugin that cannot
   report exits non-zero and says why on stderr, whose last lines end up in
   the registration's error.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import nats
from nats.errors import Error as NatsError

from noetl import messages, topology
from noetl.errors import NoetlError
from noetl.models import SchemaRegistrationCompleted

NAME = "example-plugin"
USAGE = f"usage: python -m plugins.example --registration\n\n{__doc__}"
ENV = ("NATS_URL", "PLUGIN_NAME", "REF_ID", "IMAGE_URL")

#: What this plugin takes as input: the request it would make.
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "example-plugin input",
    "type": "object",
    "properties": {
        "url": {"type": "string", "format": "uri", "description": "what to call"},
        "method": {"enum": ["GET", "POST", "PUT", "DELETE"], "default": "GET"},
    },
    "required": ["url"],
    "additionalProperties": False,
}


CONNECT_ATTEMPTS = 5


async def _nats_error(exc: Exception) -> None:
    print(f"{NAME}: NATS: {exc!r}", file=sys.stderr)


async def report(nats_url: str, plugin_name: str, ref_id: str) -> int:
    """Publish the schema; the stream sequence JetStream stored it at."""
    event = SchemaRegistrationCompleted(
        ref_id=ref_id, plugin_name=plugin_name, schema=SCHEMA
    )
    event.check()

    # A run is short-lived: try for a few seconds, then fail and say why.
    client = await nats.connect(
        nats_url,
        name=f"plugin/{plugin_name}",
        connect_timeout=5,
        max_reconnect_attempts=CONNECT_ATTEMPTS,
        reconnect_time_wait=1,
        error_cb=_nats_error,
    )
    try:
        js = client.jetstream(timeout=10)
        ack = await messages.publish(
            js, topology.SUBJECT_SCHEMA, event, f"plugin/{plugin_name}"
        )
    finally:
        await client.close()
    return ack.seq


def main(argv: list[str]) -> int:
    if argv != ["--registration"]:
        print(USAGE, file=sys.stderr)
        return 2
    missing = [name for name in ENV if not os.environ.get(name)]
    if missing:
        print(
            f"{NAME}: {', '.join(missing)} not set in the environment", file=sys.stderr
        )
        return 2

    env = {name: os.environ[name] for name in ENV}
    print(f"{NAME}: registering {env['IMAGE_URL']} as {env['PLUGIN_NAME']}")
    try:
        seq = asyncio.run(report(env["NATS_URL"], env["PLUGIN_NAME"], env["REF_ID"]))
    except (NoetlError, NatsError, OSError, TimeoutError) as exc:
        print(
            f"{NAME}: could not report to {env['NATS_URL']}: {exc!r}", file=sys.stderr
        )
        return 1
    print(f"{NAME}: schema reported for refId {env['REF_ID']} (sequence {seq})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
