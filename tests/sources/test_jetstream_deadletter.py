"""Dead-letter headers: the original ones kept, ours added, ids never collapsed."""

from __future__ import annotations

from datetime import UTC, datetime

from sources.jetstream.deadletter import Original, headers_for, subject_for

AT = datetime(2025, 5, 1, 10, 30, 0, 123000, tzinfo=UTC)


def _original(**headers: str) -> Original:
    return Original(
        stream="events",
        subject="dispatcher.api",
        sequence=42,
        headers=headers,
        data=b"{}",
    )


def test_subject_keeps_the_original_one() -> None:
    assert subject_for("dispatcher.api") == "deadletter.dispatcher.api"


def test_headers_say_what_happened() -> None:
    headers = headers_for(
        _original(**{"ce-id": "abc", "X-Trace": "t1"}),
        "sink answered 400",
        attempts=1,
        status=400,
        now=AT,
    )
    assert headers == {
        "ce-id": "abc",
        "X-Trace": "t1",
        "Noetl-Dead-Reason": "sink answered 400",
        "Noetl-Dead-Status": "400",
        "Noetl-Dead-Attempts": "1",
        "Noetl-Dead-Stream": "events",
        "Noetl-Dead-Subject": "dispatcher.api",
        "Noetl-Dead-Sequence": "42",
        "Noetl-Dead-At": "2025-05-01T10:30:00.123Z",
        "Nats-Msg-Id": "events:42:dead",
    }


def test_status_is_left_out_when_there_was_no_answer() -> None:
    headers = headers_for(_original(), "not a CloudEvent", attempts=1, now=AT)
    assert "Noetl-Dead-Status" not in headers


def test_original_message_id_is_kept_but_not_reused() -> None:
    headers = headers_for(_original(**{"Nats-Msg-Id": "r1:1.2"}), "x", 3, now=AT)
    assert headers["Nats-Msg-Id"] == "events:42:dead"
    assert headers["Noetl-Dead-Msg-Id"] == "r1:1.2"


def test_publish_directives_and_earlier_dead_headers_are_dropped() -> None:
    original = _original(
        **{
            "Nats-Expected-Last-Sequence": "7",
            "Nats-Rollup": "sub",
            "Noetl-Dead-Status": "500",
            "Noetl-Dead-Reason": "an earlier death",
        }
    )
    headers = headers_for(original, "not a CloudEvent", 1, now=AT)
    assert "Nats-Expected-Last-Sequence" not in headers
    assert "Nats-Rollup" not in headers
    assert "Noetl-Dead-Status" not in headers
    assert headers["Noetl-Dead-Reason"] == "not a CloudEvent"


def test_reason_is_one_bounded_line() -> None:
    headers = headers_for(_original(), "line one\r\nline two " + "x" * 2000, 1, now=AT)
    reason = headers["Noetl-Dead-Reason"]
    assert reason.startswith("line one line two x")
    assert len(reason) <= 512 and reason.endswith("...")
