"""Plugin names, image references, callback URLs, refIds and default names."""

from __future__ import annotations

import pytest

from noetl import validation
from noetl.errors import InvalidInput


@pytest.mark.parametrize(
    "name", ["a", "http-request-2.1", "example_plugin", "x" * 63, "0.1"]
)
def test_valid_names(name: str) -> None:
    assert validation.plugin_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "-a", "a-", "A", "a b", "x" * 64, "plug/in", "é", 3, None]
)
def test_invalid_names_name_the_rule(name: object) -> None:
    with pytest.raises(InvalidInput, match=r"pluginName.*1 to 63 characters"):
        validation.plugin_name(name)


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "localhost/noetl/example-plugin:1.0",
        "localhost:5000/a/b:v1",
        "ghcr.io/org/team/plugin@sha256:" + "a" * 64,
        "registry.example/p:1.0@sha256:" + "b" * 64,
        "[::1]:5000/p",
    ],
)
def test_valid_images(image: str) -> None:
    assert validation.image_url(image) == image


@pytest.mark.parametrize(
    "image",
    ["", "upper/Case", "a//b", "a:", "a@sha256:short", "http://x/y", "a b", "a:-x", 1],
)
def test_invalid_images(image: object) -> None:
    with pytest.raises(InvalidInput, match=r"imageUrl.*OCI image reference"):
        validation.image_url(image)


@pytest.mark.parametrize("url", ["http://a", "https://a.example:8443/cb?x=1"])
def test_valid_callbacks(url: str) -> None:
    assert validation.callback_api(url) == url


@pytest.mark.parametrize("url", ["ftp://a", "/relative", "http://", "http://a:port", 5])
def test_invalid_callbacks(url: object) -> None:
    with pytest.raises(InvalidInput, match="callbackApi"):
        validation.callback_api(url)


def test_ref_ids() -> None:
    ok = "0b5cbd8e-5a4f-4c4e-9d1c-52a0d3f8a1b2"
    assert validation.ref_id(ok) == ok
    for bad in ["x", ok.replace("-", ""), ok.upper()[:-1] + "Z", None]:
        with pytest.raises(InvalidInput, match="refId"):
            validation.ref_id(bad)


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("localhost/noetl/example-plugin:1.0", "example-plugin-1.0"),
        ("localhost/noetl/example-plugin:latest", "example-plugin"),
        ("localhost/noetl/example-plugin", "example-plugin"),
        ("ghcr.io/a/http-request@sha256:" + "c" * 64, "http-request"),
        ("reg.example/p:V2", "p-v2"),
    ],
)
def test_default_names(image: str, name: str) -> None:
    assert validation.default_plugin_name(image) == name


def test_underivable_default_name_asks_for_one() -> None:
    with pytest.raises(InvalidInput, match="give pluginName"):
        validation.default_plugin_name("reg.example/p:1.0-")
