"""What people read: tables, details, steps and the rendered part logs."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from noetl.cli import render
from noetl.cli.deadletters import DeadLetter
from noetl.cli.watch import Step
from noetl.dev import logview

REF = "0b7c6f0e-5a43-4e5e-9a55-2f8a3a1e9f10"


def test_table_pads_every_column_but_the_last() -> None:
    text = render.table(("A", "LONGER"), [("x", "1"), ("wider", None)])
    assert text.splitlines() == ["A      LONGER", "x      1", "wider  -"]


def test_plugins_table_sorted_by_name_with_lower_case_states() -> None:
    text = render.plugins(
        [
            {"name": "b", "imageUrl": "i/b:1", "refId": "r2", "state": "FAILED"},
            {"name": "a", "imageUrl": "i/a:1", "refId": "r1", "state": "SUCCESS"},
        ]
    )
    header, first, second = text.splitlines()
    assert header.split() == ["NAME", "STATE", "IMAGE", "REFID"]
    assert first.split() == ["a", "success", "i/a:1", "r1"]
    assert second.split() == ["b", "failed", "i/b:1", "r2"]
    assert render.plugins([]) == "no plugins registered"


def test_registration_details_show_the_schema_indented() -> None:
    text = render.registration(
        {
            "refId": REF,
            "pluginName": "p",
            "imageUrl": "i/p:1",
            "callbackApi": None,
            "state": "SUCCESS",
            "error": None,
            "schema": {"type": "object"},
            "updatedAt": "2026-01-01T00:00:00.000Z",
        }
    )
    assert f"refId:       {REF}" in text
    assert "state:       success" in text
    assert "callbackApi: -" in text
    assert text.endswith('schema:\n  {\n    "type": "object"\n  }')


def test_step_line_keeps_a_long_detail_under_its_first_line() -> None:
    at = datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)
    line = render.step(Step("4.1", "run failed", "exited 1:\nboom", at))
    first, second = line.splitlines()
    clock = at.astimezone().strftime("%H:%M:%S.123")
    assert first == f"{clock}  4.1      run failed        exited 1:"
    assert second == " " * first.index("exited") + "boom"


def test_deadletters_table() -> None:
    letter = DeadLetter(
        sequence=7,
        stored_subject="deadletter.catalog.plugin.register",
        headers={
            "Noetl-Dead-Reason": "sink answered 400",
            "Noetl-Dead-Status": "400",
            "Noetl-Dead-Attempts": "1",
        },
    )
    header, row = render.deadletters([letter]).splitlines()
    assert header.split() == ["SEQ", "SUBJECT", "STATUS", "ATTEMPTS", "REASON"]
    assert row.split() == [
        "7",
        "catalog.plugin.register",
        "400",
        "1",
        "sink",
        "answered",
        "400",
    ]
    assert render.deadletters([]) == "no dead letters"


LINE = json.dumps(
    {
        "time": "2026-01-01T12:00:00.000Z",
        "level": "warning",
        "part": "catalog",
        "logger": "functions.catalog",
        "message": "run failed",
        "refId": REF,
    }
)


def test_a_json_line_for_a_person() -> None:
    text = logview.as_text("catalog", LINE)
    clock = datetime(2026, 1, 1, 12, tzinfo=UTC).astimezone().strftime("%H:%M:%S")
    assert text == f"{clock} {'catalog':<17} warn  run failed refId={REF}"


def test_a_nats_line_for_a_person_keeps_its_level() -> None:
    line = "[4242] 2026/01/01 12:00:00.000000 [WRN] slow consumer"
    text = logview.as_text("nats", line)
    assert text.split()[1:] == ["nats", "warn", "slow", "consumer"]


def test_an_exception_is_shown_below_its_line() -> None:
    line = json.dumps({"level": "error", "message": "oops", "exception": "Trace\n  x"})
    assert logview.as_text("api", line).endswith("oops\n    Trace\n      x")


def test_json_lines_pass_through_and_gain_a_missing_part() -> None:
    assert logview.as_json("catalog", LINE) == LINE
    gained = json.loads(logview.as_json("api", '{"level": "info", "message": "m"}'))
    assert gained == {"part": "api", "level": "info", "message": "m"}
    renamed = json.loads(logview.as_json("notifier-source", LINE))
    assert renamed["part"] == "catalog" and renamed["devPart"] == "notifier-source"


def test_plain_lines_become_json_with_their_part() -> None:
    line = "[4242] 2026/01/01 12:00:00.000000 [ERR] disk full"
    record = json.loads(logview.as_json("nats", line))
    assert (record["part"], record["level"], record["message"]) == (
        "nats",
        "error",
        "disk full",
    )
    assert json.loads(logview.as_json("api", "Traceback"))["message"] == "Traceback"


def test_the_view_renders_on_a_terminal_and_passes_json_elsewhere() -> None:
    pretty, piped = io.StringIO(), io.StringIO()
    logview.LogView(pretty, pretty=True).line("catalog", LINE)
    logview.LogView(piped).line("catalog", LINE)
    assert "warn  run failed" in pretty.getvalue()
    assert piped.getvalue() == LINE + "\n"


def test_a_quiet_view_writes_nothing() -> None:
    out = io.StringIO()
    view = logview.LogView(out, quiet=True)
    view.line("api", LINE)
    view.log("info", "x")
    view.announce("ready")
    assert out.getvalue() == ""
