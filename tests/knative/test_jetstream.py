"""The NACK Streams and KeyValues are the streams and buckets the code provisions."""

from __future__ import annotations

import pytest

from knative import manifests
from noetl import topology
from noetl.topology import BucketSpec, StreamSpec


def spec(kind: str, name: str) -> manifests.Doc:
    data: manifests.Doc = manifests.named(kind, name)["spec"]
    return data


def test_the_same_streams_and_buckets() -> None:
    streams = {d["spec"]["name"] for d in manifests.of_kind("Stream")}
    assert streams == {s.name for s in topology.STREAMS}
    buckets = {d["spec"]["bucket"] for d in manifests.of_kind("KeyValue")}
    assert buckets == {b.name for b in topology.BUCKETS}


@pytest.mark.parametrize("stream", topology.STREAMS, ids=lambda s: s.name)
def test_a_stream_has_the_code_s_subjects_and_limits(stream: StreamSpec) -> None:
    declared = spec("Stream", stream.name)
    assert declared["name"] == stream.name
    assert declared["subjects"] == list(stream.subjects)
    # provision() creates file streams with the default retention.
    assert declared["storage"] == "file"
    assert declared.get("retention", "limits") == "limits"
    assert manifests.seconds(declared.get("maxAge", "0s")) == stream.max_age
    window = manifests.seconds(declared["duplicateWindow"])
    assert window == topology.DUPLICATE_WINDOW
    assert declared.get("allowMsgSchedules", False) == stream.schedules


@pytest.mark.parametrize("bucket", topology.BUCKETS, ids=lambda b: b.name)
def test_a_bucket_has_the_code_s_history(bucket: BucketSpec) -> None:
    declared = spec("KeyValue", bucket.name)
    assert declared["history"] == bucket.history
    assert declared["storage"] == "file"


@pytest.mark.parametrize("kind", ["Stream", "KeyValue"])
def test_deleting_a_resource_keeps_the_data(kind: str) -> None:
    for doc in manifests.of_kind(kind):
        assert doc["spec"]["preventDelete"] is True, doc["metadata"]["name"]


def test_go_durations_are_read_as_nack_reads_them() -> None:
    assert manifests.seconds("168h") == 7 * 86400
    assert manifests.seconds("1m30s") == 90
    assert manifests.seconds("500ms") == 0.5
