"""The command line's grammar and where each setting comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.catalog.jobs import jobspec
from noetl.cli import config, main, parser
from noetl.dev.stack import JOB_SELECTOR, local_stack


def resolve(argv: list[str], env: dict[str, str] | None = None) -> config.Config:
    return config.resolve(parser.parse(argv), env or {})


def test_defaults_when_nothing_is_given() -> None:
    resolved = resolve(["get", "plugins"])
    assert resolved.api_url == "http://127.0.0.1:8080/gql"
    assert resolved.nats_url == "nats://127.0.0.1:4222"
    assert resolved.output == "text"


def test_environment_beats_the_default() -> None:
    env = {"NOETL_API_URL": "http://api.env/gql", "NATS_URL": "nats://env:4222"}
    resolved = resolve(["deadletters"], env)
    assert resolved.api_url == "http://api.env/gql"
    assert resolved.nats_url == "nats://env:4222"


def test_argument_beats_the_environment() -> None:
    env = {"NOETL_API_URL": "http://api.env/gql", "NATS_URL": "nats://env:4222"}
    argv = ["deadletters", "--api", "http://arg/gql", "--nats", "nats://arg:1"]
    resolved = resolve(argv, env)
    assert resolved.api_url == "http://arg/gql"
    assert resolved.nats_url == "nats://arg:1"


def test_shared_options_before_or_after_the_subcommand() -> None:
    before = resolve(["--api", "http://a/gql", "-o", "json", "status", "r"])
    after = resolve(["status", "r", "--api", "http://a/gql", "-o", "json"])
    assert before == after
    assert after.json


def test_an_empty_environment_variable_counts_as_unset() -> None:
    assert resolve(["get", "plugins"], {"NOETL_API_URL": ""}).api_url == (
        "http://127.0.0.1:8080/gql"
    )


def test_add_plugin() -> None:
    args = parser.parse(
        [
            "add",
            "plugin",
            "localhost/noetl/example-plugin:1.0",
            "--name",
            "ex",
            "--callback",
            "http://cb/",
            "--wait",
            "--timeout",
            "5",
            "--nats",
            "nats://n:1",
        ]
    )
    assert args.handler == "add_plugin"
    assert (args.image_url, args.name, args.callback) == (
        "localhost/noetl/example-plugin:1.0",
        "ex",
        "http://cb/",
    )
    assert args.wait and args.timeout == 5.0
    assert parser.parse(["add", "plugin", "img"]).timeout == 120.0


def test_dev_defaults_and_options() -> None:
    args = parser.parse(["dev"])
    assert (args.port_base, args.nats_port) == (8080, 4222)
    assert args.data_dir == Path(".noetl")
    assert args.job_backend == "process"
    args = parser.parse(
        [
            "dev",
            "--port-base",
            "9000",
            "--nats-port",
            "5222",
            "--job-backend",
            "kubernetes",
        ]
    )
    assert (args.port_base, args.nats_port, args.job_backend) == (
        9000,
        5222,
        "kubernetes",
    )


def test_demo_picks_free_ports_unless_given() -> None:
    args = parser.parse(["demo"])
    assert args.port_base is None and args.nats_port is None and args.data_dir is None


def test_replay_takes_sequences_or_all() -> None:
    assert parser.parse(["replay", "3", "5"]).sequences == [3, 5]
    assert parser.parse(["replay", "--all"]).all


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["add"],
        ["add", "plugin"],
        ["get"],
        ["get", "plugin"],
        ["status"],
        ["get", "plugins", "-o", "yaml"],
        ["add", "plugin", "img", "--timeout", "-1"],
        ["add", "plugin", "img", "--timeout", "soon"],
        ["replay", "x"],
        ["replay", "0"],
        ["dev", "--port-base", "65530"],
        ["dev", "--nats-port", "70000"],
        ["dev", "--job-backend", "docker"],
        ["nonsense"],
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser.parse(argv)
    assert exited.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["replay"], ["replay", "1", "--all"]])
def test_replay_needs_one_of_sequences_or_all(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("noetl: ") and "SEQ" in err and "Traceback" not in err


def test_a_bad_api_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "plugins", "--api", "ftp://somewhere"]) == 2
    assert capsys.readouterr().err == (
        "noetl: API URL 'ftp://somewhere' is not an http or https URL\n"
    )


def test_the_kubernetes_backend_adds_the_apiserver_stand_in() -> None:
    process = {p.name for p in local_stack(job_backend="process").parts}
    kubernetes = local_stack(job_backend="kubernetes")
    assert {p.name for p in kubernetes.parts} - process == {"apiserver-source"}
    part = kubernetes.part("apiserver-source")
    assert part.command[1:] == ("-m", "sources.apiserver")
    assert part.env["K_SINK"].endswith(":8082/")
    assert part.env["NOETL_JOB_BACKEND"] == "kubernetes"
    assert jobspec.SELECTOR == JOB_SELECTOR
