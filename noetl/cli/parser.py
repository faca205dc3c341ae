"""The ``noetl`` command line's grammar.

The shared options (``--api``, ``-o``, and ``--nats`` where NATS is used)
are accepted before the subcommand and after it; they default to nothing
here so that :mod:`noetl.cli.config` can tell a given value from an absent
one and fall back to the environment.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from noetl.cli.config import OUTPUTS
from noetl.dev.stack import JOB_BACKENDS, SPAN

EXAMPLE_IMAGE = "localhost/noetl/example-plugin:1.0"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not more than 0")
    return value


def _sequence(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a stream sequence (a whole number from 1)"
        )
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1 to 65535)")
    return int(text)


def _port_base(text: str) -> int:
    port = _port(text)
    if port + SPAN - 1 > 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} leaves no room for the {SPAN} ports from it"
        )
    return port


def _shared(nats: bool) -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "--api",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="GraphQL endpoint (else NOETL_API_URL, else http://127.0.0.1:8080/gql)",
    )
    shared.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default=argparse.SUPPRESS,
        help="text for people (the default) or json",
    )
    if nats:
        shared.add_argument(
            "--nats",
            metavar="URL",
            default=argparse.SUPPRESS,
            help="NATS server (else NATS_URL, else nats://127.0.0.1:4222)",
        )
    return shared


def build() -> argparse.ArgumentParser:
    plain, with_nats = _shared(nats=False), _shared(nats=True)
    parser = argparse.ArgumentParser(
        prog="noetl",
        description="Register plugins with the NoETL catalog and run it locally.",
        parents=[with_nats],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    add = commands.add_parser("add", help="register something with the catalog")
    what = add.add_subparsers(dest="what", metavar="WHAT", required=True)
    plugin = what.add_parser(
        "plugin", parents=[with_nats], help="register a plugin image"
    )
    plugin.add_argument("image_url", metavar="IMAGE", help="OCI image reference")
    plugin.add_argument("--name", help="plugin name (default: derived from IMAGE)")
    plugin.add_argument(
        "--callback", metavar="URL", help="callbackApi to report the outcome to"
    )
    plugin.add_argument(
        "--wait", action="store_true", help="follow each step until the outcome"
    )
    plugin.add_argument(
        "--timeout",
        type=_positive,
        default=120.0,
        metavar="SECONDS",
        help="how long --wait waits for the outcome (default 120)",
    )
    plugin.set_defaults(handler="add_plugin")

    get = commands.add_parser("get", help="show plugins")
    kind = get.add_subparsers(dest="what", metavar="WHAT", required=True)
    kind.add_parser("plugins", parents=[plain], help="every plugin").set_defaults(
        handler="get_plugins"
    )
    one = kind.add_parser("plugin", parents=[plain], help="one plugin by name")
    one.add_argument("name", metavar="NAME")
    one.set_defaults(handler="get_plugin")

    status = commands.add_parser(
        "status", parents=[plain], help="a registration by its refId"
    )
    status.add_argument("ref_id", metavar="REFID")
    status.set_defaults(handler="status")

    commands.add_parser(
        "deadletters", parents=[with_nats], help="list the dead letters"
    ).set_defaults(handler="deadletters")
    replay = commands.add_parser(
        "replay",
        parents=[with_nats],
        help="publish dead letters to their original subjects again",
    )
    replay.add_argument("sequences", metavar="SEQ", nargs="*", type=_sequence)
    replay.add_argument("--all", action="store_true", help="every dead letter")
    replay.set_defaults(handler="replay")

    dev = commands.add_parser(
        "dev", parents=[plain], help="run the whole system here, in the foreground"
    )
    _stack_options(dev, default_base=8080, default_nats=4222)
    dev.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".noetl"),
        metavar="DIR",
        help="where JetStream keeps its store (default .noetl/)",
    )
    dev.add_argument(
        "--ready-timeout",
        type=_positive,
        default=120.0,
        metavar="SECONDS",
        help="give up if the stack is not ready in this time (default 120)",
    )
    dev.set_defaults(handler="dev")

    demo = commands.add_parser(
        "demo",
        parents=[plain],
        help="start the stack, register the example plugin, show the callback",
    )
    _stack_options(demo, default_base=None, default_nats=None)
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where JetStream keeps its store (default: a temporary directory)",
    )
    demo.add_argument(
        "--image", default=EXAMPLE_IMAGE, help=f"image to register ({EXAMPLE_IMAGE})"
    )
    demo.add_argument(
        "--timeout",
        type=_positive,
        default=180.0,
        metavar="SECONDS",
        help="how long to wait for the stack, the outcome and the callback",
    )
    demo.add_argument(
        "-v", "--verbose", action="store_true", help="show every part's log lines"
    )
    demo.set_defaults(handler="demo")
    return parser


def _stack_options(
    command: argparse.ArgumentParser, default_base: int | None, default_nats: int | None
) -> None:
    free = "a free one"
    command.add_argument(
        "--port-base",
        type=_port_base,
        default=default_base,
        metavar="N",
        help="api on N, dispatcher N+1, catalog N+2, notifier N+3, N+4..N+7 spare "
        f"(default {default_base or free})",
    )
    command.add_argument(
        "--nats-port",
        type=_port,
        default=default_nats,
        metavar="PORT",
        help=f"NATS port (default {default_nats or free})",
    )
    command.add_argument(
        "--job-backend",
        choices=JOB_BACKENDS,
        default="process",
        help="how the catalog runs plugins (default process; kubernetes uses "
        "KUBECONFIG)",
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; bad arguments end the program with status 2."""
    return build().parse_args(argv)
