"""The stand-in's configuration, read from the environment in one place.

``K_SINK`` is where events go, as for any Knative source; the namespace is
the catalog's own setting, so both look at the same Jobs by default. Every
bad variable is named in one error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from functions.catalog.jobs import jobspec
from noetl.environment import LEVELS, EnvReader, http_url, log_level


@dataclass(frozen=True)
class Config:
    sink: str
    #: Empty: the pod's own namespace, else the kubeconfig context's.
    namespace: str = ""
    selector: str = jobspec.SELECTOR
    #: How long one watch request lasts before it is opened again.
    watch_seconds: float = 300.0
    request_timeout: float = 10.0
    #: Tries at POSTing one event before it is given up, as a source would.
    attempts: int = 5
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read every setting, or raise InvalidSetting naming each bad one."""
        env = EnvReader(os.environ if environ is None else environ)
        config = cls(
            sink=env.required("K_SINK", http_url, "an absolute http or https URL"),
            namespace=env.optional("NOETL_K8S_NAMESPACE", str, "a namespace", ""),
            selector=env.optional(
                "NOETL_APISERVER_SELECTOR", str, "a label selector", cls.selector
            ),
            watch_seconds=env.seconds(
                "NOETL_APISERVER_WATCH_SECONDS", cls.watch_seconds, least=1.0
            ),
            request_timeout=env.seconds(
                "NOETL_APISERVER_REQUEST_TIMEOUT_SECONDS",
                cls.request_timeout,
                least=0.1,
            ),
            attempts=env.integer("NOETL_APISERVER_ATTEMPTS", cls.attempts, least=1),
            log_level=env.optional(
                "NOETL_LOG_LEVEL", log_level, " or ".join(LEVELS), cls.log_level
            ),
        )
        env.done()
        return config
