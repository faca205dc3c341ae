"""The Kubernetes API as the catalog and the local ApiServerSource use it.

The kubernetes client is imported here and nowhere else, and this module only
by code that talks to a cluster, on first use: the client costs about 0.65 s
of import time that no other function's cold start should pay. Its calls are
synchronous; code on an event loop runs them in a thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException, incluster_config, kube_config

from functions.catalog.jobs.kubernetes import ApiRefused, ApiUnavailable, NoCluster

#: Where a pod finds its service account: token, CA and namespace.
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = "~/.kube/config"
#: Answers after which the same request may succeed later.
RETRYABLE = frozenset({408, 429})


@dataclass
class Cluster:
    """A client for one API server and the namespace it works in."""

    api: client.ApiClient
    namespace: str
    #: How the configuration was found, for messages.
    origin: str

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def create_job(self, body: dict[str, Any], timeout: float) -> bool:
        """Create the Job ``body``; False if one of its name exists already.

        Raises :class:`ApiRefused` for an answer that will not change and
        :class:`ApiUnavailable` for one that may (5xx, 408, 429, no answer).
        """
        namespace = body["metadata"]["namespace"]
        job = client.V1Job.from_dict(body)
        assert job is not None
        try:
            # Without preloading, the answer is the raw HTTP response.
            response: Any = client.BatchV1Api(self.api).create_namespaced_job(
                namespace,
                job,
                # An unknown field is an error, not a silently weaker Job.
                field_validation="Strict",
                _request_timeout=timeout,
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            what = f"{exc.status} {exc.reason or ''}".strip()
            detail = _message(exc.body)
            if exc.status in RETRYABLE or exc.status >= 500 or not exc.status:
                raise ApiUnavailable(f"the API answered {what}: {detail}") from exc
            raise ApiRefused(exc.status, f"the API answered {what}: {detail}") from exc
        except urllib3.exceptions.HTTPError as exc:
            # Timeouts, refused connections and broken answers alike.
            cause = getattr(exc, "reason", None) or exc
            # A refused connection is a subclass of a connect timeout in urllib3.
            refused = isinstance(cause, urllib3.exceptions.NewConnectionError)
            if isinstance(cause, urllib3.exceptions.TimeoutError) and not refused:
                problem = f"no answer from the API at {self.host} within {timeout:g} s"
            else:
                problem = f"cannot reach the API at {self.host}: {cause}"
            raise ApiUnavailable(problem) from exc
        # The body must be read before the connection goes back to the pool,
        # or the next request on it reads this answer as its own.
        response.drain_conn()
        response.release_conn()
        return True


def connect(
    namespace: str = "",
    environ: Mapping[str, str] | None = None,
    service_account: Path = SERVICE_ACCOUNT,
) -> Cluster:
    """The cluster this process is pointed at, in ``namespace`` if given.

    In a pod (``KUBERNETES_SERVICE_HOST`` set) it is the pod's service account
    and, by default, the pod's own namespace; elsewhere the current context
    of ``KUBECONFIG`` (else ``~/.kube/config``) and that context's namespace.
    Without either, the namespace is ``default``.
    """
    environ = os.environ if environ is None else environ
    configuration = client.Configuration()
    if environ.get("KUBERNETES_SERVICE_HOST"):
        origin = f"the pod's service account in {service_account}"
        try:
            incluster_config.InClusterConfigLoader(
                token_filename=str(service_account / "token"),
                cert_filename=str(service_account / "ca.crt"),
                environ=environ,
            ).load_and_set(configuration)
        except (ConfigException, OSError) as exc:
            raise NoCluster(f"cannot use {origin}: {exc}") from exc
        default = _read(service_account / "namespace")
    else:
        path = environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG
        origin = f"the kubeconfig {path}"
        try:
            kube_config.load_kube_config(
                config_file=path, client_configuration=configuration
            )
            _, active = kube_config.list_kube_config_contexts(config_file=path)
        except (ConfigException, OSError, ValueError, TypeError) as exc:
            raise NoCluster(
                f"cannot use {origin}: {exc}; set KUBECONFIG, or run the catalog "
                "in a pod with a service account"
            ) from exc
        default = (active or {}).get("context", {}).get("namespace")
    # The backend retries by its own rules; the pool retrying under it would
    # multiply every attempt.
    configuration.retries = 0
    return Cluster(
        api=client.ApiClient(configuration),
        namespace=namespace or default or "default",
        origin=origin,
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _message(body: object) -> str:
    """The message of a meta/v1 Status body, else the body's start."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300] or "(no message)"
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return " ".join(text.split())[:300]
