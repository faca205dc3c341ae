"""The payloads of the registration flow, as typed models.

Each model reads itself from a message's data with :meth:`from_data`, which
names every missing or wrong field in one error, and writes itself back with
:meth:`to_data`. Field names on the wire are the contract's camelCase ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from noetl import validation
from noetl.errors import InvalidInput, InvalidPayload

EVENT = "eventType"
COMMAND = "commandType"


def _wire(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def optional() -> Any:
    """A field that may be absent on the wire."""
    return field(default=None, metadata={"optional": True})


@dataclass(frozen=True)
class Payload:
    """Base of every payload: a type field and named, checked fields."""

    KIND: ClassVar[str]  # "eventType" or "commandType"
    TYPE: ClassVar[str]
    #: The step of the flow, used in message ids: ``<refId>:<step>``.
    STEP: ClassVar[str]

    ref_id: str
    plugin_name: str

    @classmethod
    def ce_type(cls) -> str:
        kind = "event" if cls.KIND == EVENT else "command"
        return f"io.noetl.{kind}.{cls.TYPE}"

    def message_id(self) -> str:
        return f"{self.ref_id}:{self.STEP}"

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {self.KIND: self.TYPE}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None or not f.metadata.get("optional"):
                data[_wire(f.name)] = value
        return data

    @classmethod
    def from_data(cls, data: object) -> Self:
        if not isinstance(data, dict):
            raise InvalidPayload(f"{cls.TYPE}: data must be a JSON object")
        if data.get(cls.KIND) not in (None, cls.TYPE):
            raise InvalidPayload(
                f"{cls.KIND} is {data.get(cls.KIND)!r}, expected {cls.TYPE!r}"
            )
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in dataclasses.fields(cls):
            wire = _wire(f.name)
            if wire in data and data[wire] is not None:
                values[f.name] = data[wire]
            elif f.metadata.get("optional"):
                values[f.name] = None
            else:
                problems.append(f"missing field {wire!r}")
        if problems:
            raise InvalidPayload(f"{cls.TYPE}: " + "; ".join(problems))
        payload = cls(**values)
        payload.check()
        return payload

    def check(self) -> None:
        """Validate field values; subclasses add their own."""
        try:
            validation.ref_id(self.ref_id)
            validation.plugin_name(self.plugin_name)
        except InvalidInput as exc:
            raise InvalidPayload(f"{self.TYPE}: {exc}") from None


@dataclass(frozen=True)
class _ImagePayload(Payload):
    """A payload that names the image to register and who asked for it."""

    image_url: str
    request_source: dict[str, Any]

    def check(self) -> None:
        super().check()
        try:
            validation.image_url(self.image_url)
        except InvalidInput as exc:
            raise InvalidPayload(f"{self.TYPE}: {exc}") from None
        if not isinstance(self.request_source, dict):
            raise InvalidPayload(f"{self.TYPE}: requestSource must be a JSON object")


@dataclass(frozen=True)
class RegistrationRequested(_ImagePayload):
    """1.2: someone asked to register a plugin image."""

    KIND = EVENT
    TYPE = "PluginImageRegistrationRequestReceived"
    STEP = "1.2"

    #: Not in the design document's payload; carried so that a dispatcher
    #: that finds no record can create a complete one.
    callback_api: str | None = optional()


@dataclass(frozen=True)
class RegisterPluginImage(_ImagePayload):
    """2.2: the catalog is told to store the plugin and run its registration."""

    KIND = COMMAND
    TYPE = "RegisterPluginImage"
    STEP = "2.2"


@dataclass(frozen=True)
class SchemaRegistrationCompleted(Payload):
    """4.1: the plugin reported its schema."""

    KIND = EVENT
    TYPE = "pluginSchemaRegistrationCompleted"
    STEP = "4.1:completed"

    schema: dict[str, Any]

    def check(self) -> None:
        super().check()
        if not isinstance(self.schema, dict):
            raise InvalidPayload(f"{self.TYPE}: schema must be a JSON object")


@dataclass(frozen=True)
class SchemaRegistrationFailed(Payload):
    """4.1: the registration run failed; ``error`` says why."""

    KIND = EVENT
    TYPE = "pluginSchemaRegistrationFailed"
    STEP = "4.1:failed"

    image_url: str
    error: str


@dataclass(frozen=True)
class ReportPluginRegistration(Payload):
    """5.1: tell the requester how the registration ended."""

    KIND = COMMAND
    TYPE = "ReportPluginRegistration"
    STEP = "5.1"

    state: str
    error: str | None = optional()

    def check(self) -> None:
        super().check()
        if self.state not in ("success", "failed"):
            raise InvalidPayload(
                f"{self.TYPE}: state is {self.state!r}, expected 'success' or 'failed'"
            )


@dataclass(frozen=True)
class CheckRegistration(Payload):
    """A timer that fired: if the registration is still not final, it failed.

    ``reason`` names the timer (``grace`` after a run that ended without a
    report, ``deadline`` for the whole registration); ``error`` is what the
    registration fails with if nothing has decided it by then.
    """

    KIND = COMMAND
    TYPE = "CheckRegistration"
    STEP = "check"

    image_url: str
    reason: str
    error: str

    def message_id(self) -> str:
        return f"{self.ref_id}:{self.STEP}:{self.reason}"


PAYLOADS: tuple[type[Payload], ...] = (
    RegistrationRequested,
    RegisterPluginImage,
    SchemaRegistrationCompleted,
    SchemaRegistrationFailed,
    ReportPluginRegistration,
    CheckRegistration,
)
BY_CE_TYPE = {cls.ce_type(): cls for cls in PAYLOADS}
