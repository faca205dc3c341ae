"""Job changes as the CloudEvents an ApiServerSource sends, with no I/O.

Resource mode: the type says what happened (``add``, ``update``,
``delete``), the source is the API server's URL, the subject the Job's API
path, the data the Job as the API returned it, and every event gets a new
random id, as ApiServerSource gives it.
"""

from __future__ import annotations

import uuid
from typing import Any

from cloudevents.http import CloudEvent

PREFIX = "dev.knative.apiserver.resource."
#: Watch event types and the CloudEvent type each becomes.
TYPES = {"ADDED": "add", "MODIFIED": "update", "DELETED": "delete"}


def subject(job: dict[str, Any]) -> str:
    metadata = job.get("metadata") or {}
    return (
        f"/apis/batch/v1/namespaces/{metadata.get('namespace', '')}"
        f"/jobs/{metadata.get('name', '')}"
    )


def event_for(change: str, job: dict[str, Any], api_url: str) -> CloudEvent:
    """The CloudEvent for a watch event ``change`` (ADDED, MODIFIED, DELETED)."""
    metadata = job.get("metadata") or {}
    # A list's items come without these; an ApiServerSource sends whole objects.
    data = {"apiVersion": "batch/v1", "kind": "Job", **job}
    return CloudEvent(
        {
            "id": str(uuid.uuid4()),
            "type": PREFIX + TYPES[change],
            "source": api_url,
            "subject": subject(job),
            "datacontenttype": "application/json",
            "kind": "Job",
            "name": str(metadata.get("name", "")),
            "namespace": str(metadata.get("namespace", "")),
        },
        data,
    )
