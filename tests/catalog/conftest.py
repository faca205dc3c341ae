"""Fixtures of the catalog's tests: the stub Kubernetes API server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubestub import KubeStub


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    """A stub API server; ``kube.kubeconfig(tmp_path)`` points a client at it."""
    with KubeStub() as stub:
        yield stub
