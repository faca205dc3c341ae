"""NATS as the api reaches it: never waiting forever, failing as Unavailable.

A person is waiting on every request, so a NATS that is away must become a
prompt answer saying to try again, not a hung request and not a 500.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from nats.errors import Error as NatsError

from noetl.errors import Unavailable

log = logging.getLogger(__name__)

#: What a failing NATS operation raises: the client's errors, a socket's, or
#: a request that timed out.
NATS_ERRORS = (NatsError, OSError, TimeoutError)


@contextlib.contextmanager
def answering(doing: str) -> Iterator[None]:
    """Turn a NATS failure inside the block into ``could not <doing>; try again``.

    The cause goes to the log, not to the requester: it names internal
    addresses and says nothing the requester can act on.
    """
    try:
        yield
    except (Unavailable, *NATS_ERRORS) as exc:
        log.warning("could not %s: %s", doing, describe(exc))
        raise Unavailable(f"could not {doing}; try again") from exc


def describe(exc: BaseException) -> str:
    """A failure in words, also when its message is empty (a bare timeout)."""
    return str(exc) or type(exc).__name__
