"""A registration run as a batch/v1 Job: a pure function, no client, no I/O.

The body is a plain dict in the API's own field names, posted as it is and
validated in the tests against the Kubernetes schema. Its name comes from
the refId alone, so that a redelivered command meets 409 AlreadyExists; its
labels let the ApiServerSource (and anyone with kubectl) find it again.
"""

from __future__ import annotations

import re
from typing import Any

from functions.catalog.jobs import Run
from noetl.settings import Settings

PREFIX = "noetl-reg-"
CONTAINER = "plugin"
#: DNS-1123 label length: also the longest name a Job's pods can carry.
MAX_NAME = 63
MAX_LABEL = 63

MANAGED_BY = "noetl"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_REF_ID = "noetl.io/ref-id"
LABEL_PLUGIN = "noetl.io/plugin-name"
ANNOTATION_IMAGE = "noetl.io/image-url"
#: What selects our Jobs and nothing else: the ApiServerSource's selector.
SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
COMMON_LABELS = {
    "app.kubernetes.io/name": "noetl-plugin",
    "app.kubernetes.io/component": "registration",
    "app.kubernetes.io/part-of": "noetl",
    LABEL_MANAGED_BY: MANAGED_BY,
}

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9._-]+")


def job_name(ref_id: str) -> str:
    """``noetl-reg-<refId>``: the same refId always names the same Job."""
    name = _NOT_DNS.sub("-", (PREFIX + ref_id).lower())
    return name[:MAX_NAME].strip("-")


def label_value(text: str) -> str:
    """``text`` as a label value: 63 characters of A-Z a-z 0-9 . _ - at most,
    beginning and ending with a letter or digit (empty if nothing is left)."""
    value = _NOT_LABEL.sub("-", text)[:MAX_LABEL]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def labels(run: Run) -> dict[str, str]:
    return {
        **COMMON_LABELS,
        LABEL_REF_ID: label_value(run.ref_id),
        LABEL_PLUGIN: label_value(run.plugin_name),
    }


def job_for(run: Run, config: Settings, namespace: str) -> dict[str, Any]:
    """The Job that runs ``run`` in ``namespace`` as ``config`` says."""
    metadata = {
        "name": job_name(run.ref_id),
        "namespace": namespace,
        "labels": labels(run),
        "annotations": {ANNOTATION_IMAGE: run.image_url},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": config.k8s_backoff_limit,
            "activeDeadlineSeconds": config.k8s_active_deadline,
            "ttlSecondsAfterFinished": config.k8s_ttl_after_finished,
            "podFailurePolicy": {
                "rules": [
                    # A node drained or a pod preempted is nobody's failure.
                    {
                        "action": "Ignore",
                        "onPodConditions": [
                            {"type": "DisruptionTarget", "status": "True"}
                        ],
                    },
                    # A plugin that exits non-zero will do so again: no retry.
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "NotIn",
                            "values": [0],
                        },
                    },
                ]
            },
            "template": {
                "metadata": {
                    "labels": metadata["labels"],
                    "annotations": metadata["annotations"],
                },
                "spec": _pod(run, config),
            },
        },
    }


def _pod(run: Run, config: Settings) -> dict[str, Any]:
    """The restricted Pod Security profile, a read-only root and a /tmp."""
    security: dict[str, Any] = {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if config.k8s_run_as_user:
        security["runAsUser"] = config.k8s_run_as_user
        security["runAsGroup"] = config.k8s_run_as_user
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": run.image_url,
        "imagePullPolicy": config.k8s_image_pull_policy,
        "args": list(run.args),
        "env": [{"name": name, "value": value} for name, value in run.env.items()],
        "resources": {
            "requests": {
                "cpu": config.k8s_cpu_request,
                "memory": config.k8s_memory_request,
            },
            "limits": {
                "cpu": config.k8s_cpu_limit,
                "memory": config.k8s_memory_limit,
            },
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        # The pod's status then shows the last lines of a plugin that failed.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if config.k8s_nats_secret:
        # The explicit env above wins over a key of the same name.
        container["envFrom"] = [{"secretRef": {"name": config.k8s_nats_secret}}]

    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        # A plugin talks to NATS, never to the Kubernetes API.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": security,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": config.k8s_tmp_size}}],
    }
    if config.k8s_service_account:
        pod["serviceAccountName"] = config.k8s_service_account
    pull_secrets = _names(config.k8s_image_pull_secrets)
    if pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in pull_secrets]
    return pod


def _names(csv: str) -> list[str]:
    return [name.strip() for name in csv.split(",") if name.strip()]
