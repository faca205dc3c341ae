"""What can go wrong on the command line, each said in one line.

Every error here ends the command with its ``exit_code`` and its message on
stderr; none is a bug, so none shows a traceback.
"""

from __future__ import annotations

from noetl.errors import NoetlError


class CliError(NoetlError):
    """A command could not do what it was asked."""

    exit_code = 1


class ApiUnreachable(CliError):
    """Nothing answered at the API's address."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"cannot reach the API at {url}: {reason}")


class ApiFailed(CliError):
    """The API answered, but not with a GraphQL response."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"the API at {url} {reason}")


class GraphQLErrors(CliError):
    """The API answered with GraphQL errors; each message is kept."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("\n".join(messages))


class NotFound(CliError):
    """A plugin, registration or dead letter that does not exist."""


class NatsUnreachable(CliError):
    """NATS did not accept a connection."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"cannot reach NATS at {url}: {reason}")


class WaitTimedOut(CliError):
    """A registration was not final before the deadline."""


class RegistrationFailed(CliError):
    """A followed registration ended ``failed``."""

    def __init__(self, ref_id: str, error: str | None) -> None:
        self.ref_id = ref_id
        self.error = error
        reason = " ".join((error or "no reason given").split())
        super().__init__(f"registration {ref_id} failed: {reason}")


class BadUsage(CliError):
    """Arguments that parse but make no sense together."""

    exit_code = 2
