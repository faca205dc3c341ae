"""One exception base for the package; each subclass names what went wrong."""

from __future__ import annotations

from typing import Any


class NoetlError(Exception):
    """Base of every error this package raises on purpose."""

    #: HTTP status a function answers with when this error ends a request.
    status = 500


class InvalidInput(NoetlError):
    """A field holds a value that is not accepted."""

    status = 400

    def __init__(self, field: str, value: Any, accepted: str) -> None:
        self.field = field
        self.value = value
        self.accepted = accepted
        super().__init__(f"{field}: {value!r} is not valid; expected {accepted}")


class InvalidPayload(NoetlError):
    """A message cannot be read as the payload its type promises."""

    status = 400


class UnknownMessageType(NoetlError):
    """No route handles a message of this type."""

    status = 400

    def __init__(self, type_: str, known: list[str]) -> None:
        self.type = type_
        super().__init__(
            f"no route for message type {type_!r}; known: {', '.join(sorted(known))}"
        )


class InvalidCloudEvent(NoetlError):
    """A NATS message cannot be read as a CloudEvent."""

    status = 400


class RegistrationNotFound(NoetlError):
    """No registration record exists for a refId that must have one."""

    status = 404

    def __init__(self, ref_id: str) -> None:
        self.ref_id = ref_id
        super().__init__(f"no registration with refId {ref_id!r}")


class Unavailable(NoetlError):
    """A dependency is away for now; the same request may succeed later."""

    status = 503

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class CallbackRefused(NoetlError):
    """The requester's callback endpoint refused the report for good (a 4xx)."""

    status = 422

    def __init__(self, url: str, status: int) -> None:
        self.url = url
        self.http_status = status
        super().__init__(f"callback {url} answered {status}; not retried")
