"""Payload models: the wire names of the contract, every problem named."""

from __future__ import annotations

import uuid

import pytest

from noetl.errors import InvalidPayload
from noetl.models import (
    BY_CE_TYPE,
    RegisterPluginImage,
    RegistrationRequested,
    ReportPluginRegistration,
    SchemaRegistrationCompleted,
    SchemaRegistrationFailed,
)

REF = str(uuid.uuid4())


def test_request_has_the_contract_fields() -> None:
    event = RegistrationRequested(
        ref_id=REF,
        plugin_name="p",
        image_url="localhost/p:1",
        request_source={"gateway": "API"},
    )
    assert event.to_data() == {
        "eventType": "PluginImageRegistrationRequestReceived",
        "refId": REF,
        "pluginName": "p",
        "imageUrl": "localhost/p:1",
        "requestSource": {"gateway": "API"},
    }
    assert event.message_id() == f"{REF}:1.2"
    assert RegistrationRequested.from_data(event.to_data()) == event


def test_types_and_steps() -> None:
    assert RegisterPluginImage.ce_type() == "io.noetl.command.RegisterPluginImage"
    assert SchemaRegistrationCompleted.STEP == "4.1:completed"
    assert SchemaRegistrationFailed.STEP == "4.1:failed"
    assert ReportPluginRegistration.STEP == "5.1"
    assert len(BY_CE_TYPE) == 6


def test_every_missing_field_is_named() -> None:
    with pytest.raises(InvalidPayload) as caught:
        SchemaRegistrationFailed.from_data({"refId": REF})
    message = str(caught.value)
    for field in ("pluginName", "imageUrl", "error"):
        assert field in message


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"commandType": "Other", "refId": REF, "pluginName": "p", "state": "success"},
        {"refId": "nope", "pluginName": "p", "state": "success"},
        {"refId": REF, "pluginName": "P!", "state": "success"},
        {"refId": REF, "pluginName": "p", "state": "done"},
    ],
)
def test_bad_reports_are_refused(data: object) -> None:
    with pytest.raises(InvalidPayload):
        ReportPluginRegistration.from_data(data)


def test_schema_must_be_an_object() -> None:
    with pytest.raises(InvalidPayload, match="schema"):
        SchemaRegistrationCompleted.from_data(
            {"refId": REF, "pluginName": "p", "schema": "x"}
        )
