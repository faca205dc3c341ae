"""``noetl demo``: the whole round trip on this machine, shown step by step.

It starts the stack in-process on free ports with a temporary store, runs a
callback receiver on the stack's first spare port, registers the example
plugin with that receiver as its callbackApi, prints each step as it is
stored and then the callback, and stops everything. Any part of that which
fails ends the demo with the reason and the last lines of every part.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from noetl import localrun, records
from noetl.cli import render, watch
from noetl.cli.client import Api
from noetl.cli.errors import CliError
from noetl.dev import logview
from noetl.dev.logview import LogView
from noetl.dev.receiver import Callback, Receiver
from noetl.dev.stack import SPAN, Stack, free_port_base, local_stack
from noetl.dev.supervisor import Supervisor
from noetl.errors import NoetlError


class DemoFailed(CliError):
    """The demo did not get the round trip it shows.

    ``tails`` says whether the parts' last lines help to tell why: not when
    the registration itself ended ``failed``, whose reason is the message.
    """

    def __init__(self, message: str, *, tails: bool = True) -> None:
        self.tails = tails
        super().__init__(message)


class _Printer:
    def __init__(self, json_output: bool) -> None:
        self.json = json_output

    def say(self, text: str, **data: Any) -> None:
        if self.json:
            print(render.json_line({"message": text, **data}), flush=True)
        else:
            print(text, flush=True)

    def step(self, item: watch.Step) -> None:
        if self.json:
            print(render.json_line(item.to_json()), flush=True)
        else:
            print("  " + render.step(item), flush=True)


@contextlib.contextmanager
def _store(data_dir: Path | None) -> Iterator[Path]:
    if data_dir is not None:
        yield data_dir
        return
    with tempfile.TemporaryDirectory(
        prefix="noetl-demo-", ignore_cleanup_errors=True
    ) as temporary:
        yield Path(temporary)


def _nats_port(port_base: int) -> int:
    while True:
        port = localrun.free_port()
        if not port_base <= port < port_base + SPAN:
            return port


async def run(
    *,
    port_base: int | None = None,
    nats_port: int | None = None,
    data_dir: Path | None = None,
    job_backend: str = "process",
    image: str = "localhost/noetl/example-plugin:1.0",
    time_limit: float = 180.0,
    verbose: bool = False,
    json_output: bool = False,
) -> None:
    """Run the demo; DemoFailed (or another NoetlError) says what went wrong."""
    out = _Printer(json_output)
    base = port_base or free_port_base()
    with _store(data_dir) as store:
        stack = local_stack(
            port_base=base,
            nats_port=nats_port or _nats_port(base),
            data_dir=store,
            job_backend=job_backend,
        )
        supervisor = Supervisor(stack, LogView(sys.stdout, quiet=not verbose))
        receiver = Receiver(stack.host, stack.extra_port(0))
        try:
            await _round_trip(stack, supervisor, receiver, image, time_limit, out)
        except NoetlError as exc:
            if getattr(exc, "tails", True):
                _show_tails(supervisor, stack)
            raise
        finally:
            out.say("stopping the stack")
            await asyncio.to_thread(supervisor.stop)
            await receiver.stop()


async def _round_trip(
    stack: Stack,
    supervisor: Supervisor,
    receiver: Receiver,
    image: str,
    time_limit: float,
    out: _Printer,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + time_limit

    def left() -> float:
        return max(1.0, deadline - loop.time())

    out.say(f"starting the stack; JetStream store in {stack.data_dir}")
    await asyncio.to_thread(supervisor.start)
    try:
        await receiver.start()
    except OSError as exc:
        raise DemoFailed(f"the callback receiver cannot listen: {exc}") from None
    await asyncio.to_thread(supervisor.wait_ready, left())
    for part in stack.parts:
        out.say(f"  {part.name:<17} {part.url}", part=part.name, url=part.url)
    out.say("ready")
    out.say(f"callback receiver on {receiver.url}", url=receiver.url)

    out.say(f"registering {image} with callbackApi {receiver.url}", image=image)
    async with Api(stack.api_url) as api:
        outcome = await watch.register(
            api,
            stack.nats_url,
            image,
            callback_api=receiver.url,
            time_limit=left(),
            on_submitted=lambda ref_id: out.say(f"refId {ref_id}", refId=ref_id),
            on_step=out.step,
        )
    if outcome.state != records.SUCCESS:
        raise DemoFailed(
            f"registration {outcome.ref_id} ended {outcome.state}: {outcome.error}",
            tails=False,
        )

    callback = await _callback(receiver, outcome.ref_id, left())
    out.say(
        f"callback received: {callback.method} {callback.path} "
        f"Idempotency-Key: {callback.idempotency_key}",
        callback=callback.to_json(),
    )
    if not out.json:
        out.say("  " + render.json_line(callback.body))
    out.say(f"demo done: {image} registered, callback state success")


async def _callback(receiver: Receiver, ref_id: str, within: float) -> Callback:
    """The receiver's callback for ``ref_id``, which must say success."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            callback = await receiver.next(max(0.0, deadline - loop.time()))
        except TimeoutError:
            raise DemoFailed(
                f"no callback for {ref_id} reached {receiver.url} in {within:g} s"
            ) from None
        body = callback.body if isinstance(callback.body, dict) else {}
        if body.get("refId") != ref_id:
            continue
        if body.get("state") != records.SUCCESS:
            raise DemoFailed(
                f"the callback for {ref_id} says {body.get('state')!r}", tails=False
            )
        return callback


def _show_tails(supervisor: Supervisor, stack: Stack, lines: int = 10) -> None:
    for part in stack.parts:
        tail = supervisor.tail(part.name)[-lines:]
        if tail:
            print(f"--- last lines of {part.name} ---", file=sys.stderr)
            for line in tail:
                print("    " + logview.as_text(part.name, line), file=sys.stderr)
    sys.stderr.flush()
