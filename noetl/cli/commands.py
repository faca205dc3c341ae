"""One function per subcommand; each returns the exit status or raises CliError."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from noetl import records
from noetl.cli import broker, deadletters, render, watch
from noetl.cli.client import Api
from noetl.cli.config import Config
from noetl.cli.errors import BadUsage, CliError, NotFound, RegistrationFailed
from noetl.dev.demo import run as run_demo
from noetl.dev.logview import LogView
from noetl.dev.stack import local_stack
from noetl.dev.supervisor import Supervisor


def say(text: str) -> None:
    print(text, flush=True)


def fail(text: str) -> None:
    print(f"noetl: {text}", file=sys.stderr, flush=True)


async def add_plugin(args: argparse.Namespace, config: Config) -> int:
    async with Api(config.api_url) as api:
        if not args.wait:
            ref_id = await api.register_plugin(
                args.image_url, plugin_name=args.name, callback_api=args.callback
            )
            say(render.json_line({"refId": ref_id}) if config.json else ref_id)
            return 0

        def submitted(ref_id: str) -> None:
            say(
                render.json_line({"refId": ref_id})
                if config.json
                else f"refId {ref_id}"
            )

        def step(item: watch.Step) -> None:
            say(render.json_line(item.to_json()) if config.json else render.step(item))

        outcome = await watch.register(
            api,
            config.nats_url,
            args.image_url,
            plugin_name=args.name,
            callback_api=args.callback,
            time_limit=args.timeout,
            on_submitted=submitted,
            on_step=step,
        )
    if config.json:
        say(
            render.json_line(
                {
                    "refId": outcome.ref_id,
                    "state": outcome.state,
                    "error": outcome.error,
                }
            )
        )
    if outcome.state != records.SUCCESS:
        raise RegistrationFailed(outcome.ref_id, outcome.error)
    if not config.json:
        say(f"registered: {outcome.ref_id} success")
    return 0


async def get_plugins(args: argparse.Namespace, config: Config) -> int:
    async with Api(config.api_url) as api:
        items = await api.plugins()
    say(render.to_json(items) if config.json else render.plugins(items))
    return 0


async def get_plugin(args: argparse.Namespace, config: Config) -> int:
    async with Api(config.api_url) as api:
        item = await api.plugin(args.name)
    if item is None:
        raise NotFound(f"no plugin named {args.name!r}")
    say(render.to_json(item) if config.json else render.plugin(item))
    return 0


async def status(args: argparse.Namespace, config: Config) -> int:
    async with Api(config.api_url) as api:
        item = await api.registration(args.ref_id)
    if item is None:
        raise NotFound(f"no registration with refId {args.ref_id!r}")
    say(render.to_json(item) if config.json else render.registration(item))
    return 0


async def list_deadletters(args: argparse.Namespace, config: Config) -> int:
    async with broker.connected(config.nats_url) as nc:
        letters = await deadletters.list_all(nc.jetstream(timeout=5))
    if config.json:
        say(render.to_json([letter.to_json() for letter in letters]))
    else:
        say(render.deadletters(letters))
    return 0


async def replay(args: argparse.Namespace, config: Config) -> int:
    if args.all == bool(args.sequences):
        raise BadUsage("replay takes SEQ... or --all, one of the two")
    done: list[dict[str, object]] = []
    failures = 0
    async with broker.connected(config.nats_url) as nc:
        js = nc.jetstream(timeout=5)
        if args.all:
            letters = await deadletters.list_all(js)
        else:
            letters = []
            for sequence in args.sequences:
                try:
                    letters.append(await deadletters.get(js, sequence))
                except CliError as exc:
                    fail(str(exc))
                    failures += 1
        for letter in letters:
            try:
                ack = await deadletters.replay(js, letter)
            except CliError as exc:
                fail(str(exc))
                failures += 1
                continue
            done.append(
                {
                    "sequence": letter.sequence,
                    "subject": letter.subject,
                    "stream": ack.stream,
                    "streamSequence": ack.seq,
                }
            )
            if not config.json:
                say(
                    f"replayed dead letter {letter.sequence} to {letter.subject} "
                    f"({ack.stream} sequence {ack.seq}); deleted it from "
                    "deadletters"
                )
    if config.json:
        say(render.to_json(done))
    elif not letters and not failures:
        say("no dead letters to replay")
    if failures:
        raise CliError(f"{failures} dead letter(s) not replayed")
    return 0


class _Stop(Exception):
    """A signal asked the foreground stack to stop."""


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn the first SIGINT, SIGTERM or SIGHUP (the terminal closed) into _Stop;
    ignore the ones after it, so that stopping is not cut short."""
    stopping = False

    def handle(number: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise _Stop(signal.Signals(number).name)

    numbers = [signal.SIGINT, signal.SIGTERM]
    # Under nohup a hangup is ignored on purpose; leave it so.
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        numbers.append(signal.SIGHUP)
    previous = {number: signal.signal(number, handle) for number in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def dev(args: argparse.Namespace, config: Config) -> int:
    stack = local_stack(
        port_base=args.port_base,
        nats_port=args.nats_port,
        data_dir=args.data_dir,
        job_backend=args.job_backend,
    )
    view = LogView(sys.stdout, pretty=False if config.json else None)
    if args.job_backend == "kubernetes" and not _kubeconfig():
        view.log(
            "warning",
            "the kubernetes job backend needs a cluster: set KUBECONFIG or "
            "create ~/.kube/config",
        )
    supervisor = Supervisor(stack, view)
    with _stop_on_signals():
        try:
            supervisor.start()
            for part in stack.parts:
                view.announce(f"{part.name:<17} {part.url}")
            supervisor.wait_ready(args.ready_timeout)
            view.announce("ready")
            supervisor.wait()
            return 1  # the keeper ended without being asked to
        except _Stop as stop:
            view.log("info", f"{stop} received; stopping every part")
            return 0
        finally:
            supervisor.stop()


def _kubeconfig() -> bool:
    return bool(os.environ.get("KUBECONFIG")) or (Path.home() / ".kube/config").exists()


async def demo(args: argparse.Namespace, config: Config) -> int:
    await run_demo(
        port_base=args.port_base,
        nats_port=args.nats_port,
        data_dir=args.data_dir,
        job_backend=args.job_backend,
        image=args.image,
        time_limit=args.timeout,
        verbose=args.verbose,
        json_output=config.json,
    )
    return 0


Command = Callable[[argparse.Namespace, Config], Coroutine[Any, Any, int]]
ASYNC: dict[str, Command] = {
    "add_plugin": add_plugin,
    "get_plugins": get_plugins,
    "get_plugin": get_plugin,
    "status": status,
    "deadletters": list_deadletters,
    "replay": replay,
    "demo": demo,
}


def run(args: argparse.Namespace, config: Config) -> int:
    """Run the subcommand ``args`` name."""
    if args.handler == "dev":
        return dev(args, config)
    return asyncio.run(ASYNC[args.handler](args, config))
