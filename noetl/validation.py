"""What a plugin name, an image reference, a callback URL and a refId may be.

Each check raises :class:`InvalidInput` naming the field, the value and what
would have been accepted.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

from noetl.errors import InvalidInput

PLUGIN_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?")
PLUGIN_NAME_RULE = (
    "1 to 63 characters of a-z 0-9 . _ -, starting and ending with a letter or digit"
)

# The OCI reference grammar of distribution/reference: [domain/]path[:tag][@digest]
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
IMAGE_REFERENCE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*"
    r":[0-9a-fA-F]{32,}))?"
)
IMAGE_RULE = "an OCI image reference such as registry.example/team/plugin:1.0"
MAX_IMAGE_NAME = 255


def plugin_name(value: object, field: str = "pluginName") -> str:
    if not isinstance(value, str) or not PLUGIN_NAME.fullmatch(value):
        raise InvalidInput(field, value, PLUGIN_NAME_RULE)
    return value


def image_url(value: object, field: str = "imageUrl") -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, value, IMAGE_RULE)
    match = IMAGE_REFERENCE.fullmatch(value)
    if match is None or len(value.split("@")[0].rsplit(":", 1)[0]) > MAX_IMAGE_NAME:
        raise InvalidInput(field, value, IMAGE_RULE)
    return value


def callback_api(value: object, field: str = "callbackApi") -> str:
    rule = "an absolute http or https URL"
    if not isinstance(value, str):
        raise InvalidInput(field, value, rule)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise InvalidInput(field, value, rule) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(field, value, rule)
    return value


def ref_id(value: object, field: str = "refId") -> str:
    rule = "a UUID4 in its 36-character form"
    if not isinstance(value, str) or len(value) != 36:
        raise InvalidInput(field, value, rule)
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise InvalidInput(field, value, rule) from None
    if str(parsed) != value.lower():
        raise InvalidInput(field, value, rule)
    return value


def default_plugin_name(image: str) -> str:
    """The name a plugin gets when none is given: repository's last segment,
    plus ``-<tag>`` unless the tag is ``latest`` or absent."""
    match = IMAGE_REFERENCE.fullmatch(image_url(image))
    assert match is not None
    name = match["path"].rsplit("/", 1)[-1]
    tag = match["tag"]
    if tag and tag != "latest":
        name = f"{name}-{tag.lower()}"
    if not PLUGIN_NAME.fullmatch(name):
        raise InvalidInput(
            "pluginName",
            name,
            f"{PLUGIN_NAME_RULE}; the name derived from imageUrl {image!r} is not, "
            "so give pluginName",
        )
    return name
