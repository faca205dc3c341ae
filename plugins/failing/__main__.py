"""The failing plugin's registration run: say why on stderr, exit 1, report nothing.

The catalog sees the non-zero exit and reports the registration failed,
quoting the last lines of stderr, so a plugin that cannot register should
write its reason there.
"""

from __future__ import annotations

import sys

NAME = "failing-plugin"
USAGE = "usage: python -m plugins.failing --registration"


def main(argv: list[str]) -> int:
    if argv != ["--registration"]:
        print(USAGE, file=sys.stderr)
        return 2
    print(
        f"{NAME}: cannot describe my input: this plugin fails on purpose, "
        "to show what a failed registration looks like",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
