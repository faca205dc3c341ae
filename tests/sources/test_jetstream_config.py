"""The source's configuration: defaults, and errors that name each variable."""

from __future__ import annotations

import pytest

from noetl.environment import InvalidSetting
from sources.jetstream.config import Config

BASE = {
    "K_SINK": "http://127.0.0.1:9000/",
    "NOETL_SOURCE_STREAM": "events",
    "NOETL_SOURCE_DURABLE": "dispatcher",
}


def test_defaults() -> None:
    config = Config.from_env(BASE)
    assert config.nats_url == "nats://127.0.0.1:4222"
    assert config.subjects == ()
    assert config.extensions == {}
    assert config.policy.max_deliver == 5
    assert (config.policy.backoff, config.policy.backoff_max) == (1.0, 60.0)
    assert (config.ack_wait, config.max_inflight, config.request_timeout) == (
        30.0,
        16,
        60.0,
    )
    assert config.log_level == "INFO"


def test_every_setting_is_read() -> None:
    config = Config.from_env(
        {
            **BASE,
            "NATS_URL": "nats://nats:4222",
            "NOETL_SOURCE_SUBJECTS": " dispatcher.api, catalog.schema.> ,",
            "K_CE_OVERRIDES": '{"extensions": {"cluster": "local"}}',
            "NOETL_SOURCE_MAX_DELIVER": "3",
            "NOETL_SOURCE_ACK_WAIT_SECONDS": "2",
            "NOETL_SOURCE_BACKOFF_SECONDS": "0.1",
            "NOETL_SOURCE_BACKOFF_MAX_SECONDS": "0.5",
            "NOETL_SOURCE_MAX_INFLIGHT": "4",
            "NOETL_SOURCE_REQUEST_TIMEOUT_SECONDS": "7.5",
            "NOETL_LOG_LEVEL": "debug",
        }
    )
    assert config.nats_url == "nats://nats:4222"
    assert config.subjects == ("dispatcher.api", "catalog.schema.>")
    assert config.extensions == {"cluster": "local"}
    assert config.policy.max_deliver == 3
    assert (config.policy.backoff, config.policy.backoff_max) == (0.1, 0.5)
    assert (config.ack_wait, config.max_inflight, config.request_timeout) == (
        2.0,
        4,
        7.5,
    )
    assert config.log_level == "DEBUG"


def test_missing_variables_are_all_named() -> None:
    with pytest.raises(InvalidSetting) as caught:
        Config.from_env({})
    assert [problem.split()[0] for problem in caught.value.problems] == [
        "K_SINK",
        "NOETL_SOURCE_STREAM",
        "NOETL_SOURCE_DURABLE",
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("K_SINK", "ftp://example.com/"),
        ("K_SINK", "/relative"),
        ("NOETL_SOURCE_STREAM", "events.all"),
        ("NOETL_SOURCE_DURABLE", "two words"),
        ("NOETL_SOURCE_MAX_DELIVER", "0"),
        ("NOETL_SOURCE_MAX_DELIVER", "many"),
        ("NOETL_SOURCE_ACK_WAIT_SECONDS", "0.5"),
        ("NOETL_SOURCE_BACKOFF_SECONDS", "-1"),
        ("NOETL_SOURCE_BACKOFF_MAX_SECONDS", "inf"),
        ("NOETL_SOURCE_MAX_INFLIGHT", "1.5"),
        ("NOETL_SOURCE_REQUEST_TIMEOUT_SECONDS", "soon"),
        ("NOETL_LOG_LEVEL", "loud"),
        ("K_CE_OVERRIDES", "not json"),
        ("K_CE_OVERRIDES", '["extensions"]'),
        ("K_CE_OVERRIDES", '{"extensions": {"Team": "x"}}'),
        ("K_CE_OVERRIDES", '{"extensions": {"id": "x"}}'),
        ("K_CE_OVERRIDES", '{"extensions": {"team": 1}}'),
    ],
)
def test_bad_value_is_named_with_what_is_accepted(name: str, value: str) -> None:
    with pytest.raises(InvalidSetting) as caught:
        Config.from_env({**BASE, name: value})
    [problem] = caught.value.problems
    assert problem.startswith(f"{name}={value!r} is not valid; expected ")


def test_sink_url_in_logs_has_no_password() -> None:
    config = Config.from_env({**BASE, "K_SINK": "https://user:secret@sink:8443/x?y=1"})
    assert config.sink_for_logs == "https://sink:8443/x?y=1"
