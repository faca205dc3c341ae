"""Local stand-ins: the command the process backend runs for an image.

Without a cluster there is no image to pull, so each image the process
backend can run maps to a local command that behaves as the image would. The
bundled example plugins are built in; ``NOETL_LOCAL_PLUGINS`` names a JSON
file that adds more: ``{"registry.example/team/plugin:1.0": ["argv", ...]}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from functions.catalog.jobs import JobError

Command = tuple[str, ...]

BUILTIN: dict[str, Command] = {
    "localhost/noetl/example-plugin:1.0": (sys.executable, "-m", "plugins.example"),
    "localhost/noetl/failing-plugin:1.0": (sys.executable, "-m", "plugins.failing"),
}


class InvalidLocalPlugins(JobError):
    """The file ``NOETL_LOCAL_PLUGINS`` names cannot be used."""


def load(path: str) -> dict[str, Command]:
    """The built-in stand-ins, extended by the file at ``path`` if given."""
    standins = dict(BUILTIN)
    if not path:
        return standins

    where = f"NOETL_LOCAL_PLUGINS={path!r}"
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise InvalidLocalPlugins(f"{where} cannot be read: {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidLocalPlugins(f"{where} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidLocalPlugins(
            f"{where} holds {type(data).__name__}; expected an object of "
            "image reference to command"
        )

    for image, argv in data.items():
        if not (
            isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)
        ):
            raise InvalidLocalPlugins(
                f"{where}: {image!r} maps to {argv!r}; expected a non-empty list "
                "of strings (the command and its arguments)"
            )
        standins[image] = tuple(argv)
    return standins
