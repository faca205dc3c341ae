"""The ``noetl`` command line: register plugins, inspect them, run the stack.

Errors end the program with one line per problem on stderr, status 1, or 2
for bad arguments; never with a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from noetl.errors import NoetlError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    from noetl.cli import commands, config, parser
    from noetl.cli.errors import CliError

    args = parser.parse(argv)
    try:
        return commands.run(args, config.resolve(args))
    except CliError as exc:
        _complain(str(exc))
        return exc.exit_code
    except NoetlError as exc:
        _complain(str(exc))
        return 1
    except KeyboardInterrupt:
        _complain("interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:
        _complain(f"unexpected {type(exc).__name__}: {exc}")
        return 1


def _complain(message: str) -> None:
    for line in message.splitlines() or [""]:
        print(f"noetl: {line}", file=sys.stderr, flush=True)
