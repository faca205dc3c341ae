"""The sink: POSTing each message's request, as :mod:`convert` built it.

One aiohttp session per process serves every POST: on loopback it carried 4
to 20 times the requests per second of httpx at concurrency 1 to 50.
"""

from __future__ import annotations

import contextlib
from types import TracebackType

import aiohttp

from sources.jetstream.convert import Request
from sources.jetstream.delivery import Attempt, parse_retry_after

#: Bytes of an error answer kept as its reason: enough for a function's
#: message, not a whole error page.
DETAIL_LIMIT = 300
#: Bytes of a success answer read so that its connection is kept for the
#: next event; a function's answer is far smaller.
KEEP_ALIVE_LIMIT = 64 * 1024


class Sink:
    """Where events go, through one HTTP session opened with ``async with``."""

    def __init__(self, url: str, timeout: float, connections: int) -> None:
        self.url = url
        self.timeout = timeout
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Sink:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connections),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, request: Request) -> Attempt:
        """POST ``request`` once; an answer or an error, never an exception."""
        if self._session is None:
            raise RuntimeError("Sink.post outside 'async with Sink(...)'")
        try:
            async with self._session.post(
                self.url,
                data=request.body,
                headers=request.headers,
                allow_redirects=False,
            ) as response:
                detail = None
                if not 200 <= response.status < 300:
                    detail = await _detail(response)
                elif _short(response):
                    # Read to the end, or the connection is closed, not
                    # reused: a server that writes the body after the
                    # headers (uvicorn does) would cost a connect per event.
                    await response.read()
                return Attempt(
                    status=response.status,
                    error=detail,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )
        except TimeoutError:
            return Attempt(error=f"no answer from the sink within {self.timeout:g}s")
        except aiohttp.ClientError as exc:
            return Attempt(error=f"POST to the sink failed: {exc!r}")


def _short(response: aiohttp.ClientResponse) -> bool:
    """Whether the answer says it is small enough to read to the end."""
    length = response.content_length
    return length is not None and length <= KEEP_ALIVE_LIMIT


async def _detail(response: aiohttp.ClientResponse) -> str | None:
    """The start of an error answer's body, as one line of text."""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        raw = await response.content.read(DETAIL_LIMIT)
        return " ".join(raw.decode("utf-8", "replace").split()) or None
    return None
