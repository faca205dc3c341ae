"""``python -m bench.peer ROLE``: one FastStream service of the chain."""

from __future__ import annotations

import sys

import uvloop
from faststream import FastStream
from faststream.nats import NatsBroker

from bench.peer import chain
from noetl import settings


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in chain.ROLES:
        print(f"usage: python -m bench.peer {{{','.join(chain.ROLES)}}}")
        return 2
    broker = NatsBroker(settings.load().nats_url)
    chain.ROLES[argv[0]](broker)

    async def consuming() -> None:
        print("consuming", flush=True)

    app = FastStream(broker, after_startup=[consuming])
    uvloop.run(app.run())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
