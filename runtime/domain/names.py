"""Rules for names users choose; every refusal names the field and what is allowed."""

from __future__ import annotations

import re
import uuid

from runtime.domain.errors import InvalidName

KAFKA_TOPIC_MAX = 249
NAMESPACE_RE = re.compile(r"^[a-z][a-z0-9-]{2,31}$")
SEGMENT_RE = re.compile(r"^[A-Za-z0-9_-]+$")
DEFAULT_NAMESPACE_PREFIX = "ns-"
RESERVED_NAMESPACES = frozenset({"admin", "api", "internal", "octopus", "system", "console"})
MAX_TOPIC_DEPTH = 16


def default_namespace(sub: str) -> str:
    """Octopus v3's rule: ``ns-`` and the last 12 hex digits of the identity."""
    return DEFAULT_NAMESPACE_PREFIX + sub.replace("-", "")[-12:]


def validate_identity(value: str, *, field: str = "identity") -> str:
    """Globus identities are UUIDs; return the canonical lowercase form."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidName(
            f"{field} {value!r} is not a Globus identity id (a UUID such as "
            "'b2f0e1c4-8d7a-4c0e-9f3a-2a1b3c4d5e6f')",
            details={"field": field},
        ) from None


def validate_namespace(name: str, *, creating: bool = False) -> str:
    if not NAMESPACE_RE.fullmatch(name):
        raise InvalidName(
            f"namespace {name!r} is invalid: use 3-32 characters, lowercase letters, "
            "digits and '-', starting with a letter",
            details={"field": "namespace"},
        )
    if creating and (name.startswith(DEFAULT_NAMESPACE_PREFIX) or name in RESERVED_NAMESPACES):
        raise InvalidName(
            f"namespace {name!r} is reserved: names starting with 'ns-' are the identities' "
            f"default namespaces, and {sorted(RESERVED_NAMESPACES)} are kept for the fabric",
            details={"field": "name"},
        )
    return name


def validate_topic(namespace: str, name: str, *, field: str = "name") -> str:
    """Dotted hierarchical names: segments of letters, digits, '_' and '-'."""
    segments = name.split(".")
    if not name or any(not SEGMENT_RE.fullmatch(s) for s in segments):
        raise InvalidName(
            f"topic {name!r} is invalid: use dot-separated segments of letters, digits, "
            "'_' and '-' (e.g. 'beamline.detector1.frames'), with no empty segment",
            details={"field": field},
        )
    if len(segments) > MAX_TOPIC_DEPTH:
        raise InvalidName(
            f"topic {name!r} has {len(segments)} levels; at most {MAX_TOPIC_DEPTH} are allowed",
            details={"field": field},
        )
    room = KAFKA_TOPIC_MAX - len(namespace) - 1
    if len(name) > room:
        raise InvalidName(
            f"topic {name!r} is {len(name)} characters; in namespace {namespace!r} at most "
            f"{room} fit Kafka's {KAFKA_TOPIC_MAX}-character limit",
            details={"field": field},
        )
    return name


def validate_prefix(namespace: str, prefix: str, *, field: str = "prefix") -> str:
    """A channel prefix: '' (all), a topic name, or a topic name ending in '.'."""
    if prefix == "":
        return prefix
    validate_topic(namespace, prefix.removesuffix("."), field=field)
    return prefix
