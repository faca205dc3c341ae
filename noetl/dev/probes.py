"""How the supervisor tells that a part is ready to do its work.

A probe is asked again and again, from the supervisor's thread, until it
says yes; each answer is quick, so one slow part does not hold up the rest.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import httpx
import nats

from noetl import topology
from noetl.dev.process import Child

log = logging.getLogger(__name__)


class Probe:
    """Base of the probes."""

    def markers(self) -> tuple[str, ...]:
        """The lines the child's output is watched for."""
        return ()

    def check(self, child: Child) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Printed(Probe):
    """Ready once the part printed a line saying ``text``."""

    text: str

    def markers(self) -> tuple[str, ...]:
        return (self.text,)

    def check(self, child: Child) -> bool:
        return child.saw(self.text)

    def describe(self) -> str:
        return f"printed {self.text!r}"


@dataclass(frozen=True)
class Answers(Probe):
    """Ready once ``url`` answers HTTP: with 2xx if ``ok``, else with anything.

    A CloudEvent function answers a plain GET with an error status, which
    still shows that it serves requests.
    """

    url: str
    ok: bool = False

    def check(self, child: Child) -> bool:
        try:
            # A proxy from the environment has no business with loopback.
            response = httpx.get(self.url, timeout=1.0, trust_env=False)
        except httpx.HTTPError:
            return False
        return response.is_success or not self.ok

    def describe(self) -> str:
        return f"GET {self.url} answers" + (" 2xx" if self.ok else "")


@dataclass(frozen=True)
class JetStreamReady(Probe):
    """Ready once the server said so and every stream and bucket exists."""

    url: str
    text: str = "Server is ready"

    def markers(self) -> tuple[str, ...]:
        return (self.text,)

    def check(self, child: Child) -> bool:
        if not child.saw(self.text):
            return False
        try:
            asyncio.run(provision(self.url))
        except Exception as exc:
            log.debug("provisioning %s failed for now: %s", self.url, exc)
            return False
        return True

    def describe(self) -> str:
        return "JetStream ready and provisioned"


async def provision(url: str) -> None:
    """Create the streams and buckets that are missing at ``url``."""

    async def quiet(exc: Exception) -> None:
        log.debug("NATS: %s", exc)

    nc = await nats.connect(
        url,
        connect_timeout=2,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.2,
        error_cb=quiet,
    )
    try:
        await topology.provision(nc.jetstream(timeout=5))
    finally:
        await nc.close()
