"""Where the command line finds the API and NATS: argument, environment, default.

Read in one place, so every subcommand resolves ``--api``, ``--nats`` and
``-o`` the same way.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass

from noetl import settings

API_ENV = "NOETL_API_URL"
NATS_ENV = "NATS_URL"
TEXT = "text"
JSON = "json"
OUTPUTS = (TEXT, JSON)


@dataclass(frozen=True)
class Config:
    api_url: str
    nats_url: str
    output: str = TEXT

    @property
    def json(self) -> bool:
        return self.output == JSON


def resolve(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Config:
    """The configuration ``args`` ask for, filled in from ``environ``."""
    env = os.environ if environ is None else environ
    api = getattr(args, "api", None) or env.get(API_ENV) or settings.DEFAULT_API_URL
    nats = getattr(args, "nats", None) or env.get(NATS_ENV) or settings.DEFAULT_NATS_URL
    return Config(api_url=api, nats_url=nats, output=getattr(args, "output", TEXT))
