"""Configuration, read in one place: environment first, then the default.

Every setting the code reads is listed here with its default, so that the
README's table and the manifests can be checked against one source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_API_URL = "http://127.0.0.1:8080/gql"


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def _int(name: str, default: int) -> int:
    return int(_float(name, default))


def _str(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class Settings:
    """What a function or source process is configured with."""

    nats_url: str = field(default_factory=lambda: _str("NATS_URL", DEFAULT_NATS_URL))
    # The address a plugin run can reach; in a cluster it differs from ours.
    plugin_nats_url: str = field(
        default_factory=lambda: _str(
            "NOETL_PLUGIN_NATS_URL", _str("NATS_URL", DEFAULT_NATS_URL)
        )
    )
    job_backend: str = field(
        default_factory=lambda: _str("NOETL_JOB_BACKEND", "process")
    )
    job_concurrency: int = field(
        default_factory=lambda: _int("NOETL_JOB_CONCURRENCY", 4)
    )
    job_timeout: float = field(
        default_factory=lambda: _float("NOETL_JOB_TIMEOUT_SECONDS", 300.0)
    )
    report_grace: float = field(
        default_factory=lambda: _float("NOETL_REPORT_GRACE_SECONDS", 30.0)
    )
    # Longer than a run may take (NOETL_JOB_TIMEOUT_SECONDS) plus the grace.
    registration_deadline: float = field(
        default_factory=lambda: _float("NOETL_REGISTRATION_DEADLINE_SECONDS", 900.0)
    )
    local_plugins: str = field(
        default_factory=lambda: os.environ.get("NOETL_LOCAL_PLUGINS", "")
    )
    callback_timeout: float = field(
        default_factory=lambda: _float("NOETL_CALLBACK_TIMEOUT_SECONDS", 10.0)
    )
    log_level: str = field(default_factory=lambda: _str("NOETL_LOG_LEVEL", "INFO"))

    # The kubernetes job backend: where each registration Job runs and how.
    #: Empty: the catalog pod's own namespace, else the kubeconfig context's,
    #: else "default".
    k8s_namespace: str = field(
        default_factory=lambda: os.environ.get("NOETL_K8S_NAMESPACE", "")
    )
    #: Empty: the namespace's default service account.
    k8s_service_account: str = field(
        default_factory=lambda: os.environ.get("NOETL_K8S_SERVICE_ACCOUNT", "")
    )
    #: Comma-separated Secret names for pulling plugin images.
    k8s_image_pull_secrets: str = field(
        default_factory=lambda: os.environ.get("NOETL_K8S_IMAGE_PULL_SECRETS", "")
    )
    k8s_image_pull_policy: str = field(
        default_factory=lambda: _str("NOETL_K8S_IMAGE_PULL_POLICY", "IfNotPresent")
    )
    #: A Secret whose keys become the plugin's environment (NATS credentials).
    k8s_nats_secret: str = field(
        default_factory=lambda: os.environ.get("NOETL_K8S_NATS_SECRET", "")
    )
    k8s_backoff_limit: int = field(
        default_factory=lambda: _int("NOETL_K8S_BACKOFF_LIMIT", 1)
    )
    k8s_active_deadline: int = field(
        default_factory=lambda: _int(
            "NOETL_K8S_ACTIVE_DEADLINE_SECONDS",
            _int("NOETL_JOB_TIMEOUT_SECONDS", 300),
        )
    )
    k8s_ttl_after_finished: int = field(
        default_factory=lambda: _int("NOETL_K8S_TTL_SECONDS_AFTER_FINISHED", 3600)
    )
    #: 0 leaves the user to the image, whose USER must then be a non-root uid.
    k8s_run_as_user: int = field(
        default_factory=lambda: _int("NOETL_K8S_RUN_AS_USER", 65532)
    )
    k8s_cpu_request: str = field(
        default_factory=lambda: _str("NOETL_K8S_CPU_REQUEST", "100m")
    )
    k8s_cpu_limit: str = field(
        default_factory=lambda: _str("NOETL_K8S_CPU_LIMIT", "500m")
    )
    k8s_memory_request: str = field(
        default_factory=lambda: _str("NOETL_K8S_MEMORY_REQUEST", "64Mi")
    )
    k8s_memory_limit: str = field(
        default_factory=lambda: _str("NOETL_K8S_MEMORY_LIMIT", "256Mi")
    )
    #: The size limit of the emptyDir mounted at /tmp.
    k8s_tmp_size: str = field(
        default_factory=lambda: _str("NOETL_K8S_TMP_SIZE_LIMIT", "64Mi")
    )
    k8s_request_timeout: float = field(
        default_factory=lambda: _float("NOETL_K8S_REQUEST_TIMEOUT_SECONDS", 10.0)
    )
    #: Tries at creating a Job while the API answers 5xx or not at all.
    k8s_create_attempts: int = field(
        default_factory=lambda: _int("NOETL_K8S_CREATE_ATTEMPTS", 4)
    )
    k8s_create_backoff: float = field(
        default_factory=lambda: _float("NOETL_K8S_CREATE_BACKOFF_SECONDS", 0.5)
    )


def load() -> Settings:
    """Read the settings from the environment as it is now."""
    return Settings()
