"""Uploaded function code: where an upload lives, and the checks before a trigger uses it.

An upload is ``uploads/<owner folder>/<upload id>.zip``. The owner folder comes from the
caller's identity, never from the request, so a caller can only ever name their own uploads:
someone else's upload id is simply not found under theirs (the same 404 as a missing one).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import BinaryIO, Final

from runtime.domain.errors import NotFound, PayloadTooLarge

UPLOAD_PREFIX: Final = "uploads/"
UPLOAD_ID_RE: Final = re.compile(r"^[0-9a-f]{32}$")
# Globus identities are UUIDs; anything else (odd development subs) is hashed into a name
# that is safe as a path segment and an S3 key part.
_SAFE_OWNER_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_CHUNK: Final = 1024 * 1024


def new_upload_id() -> str:
    return uuid.uuid4().hex


def owner_folder(owner: str) -> str:
    if _SAFE_OWNER_RE.fullmatch(owner):
        return owner
    return "h-" + hashlib.sha256(owner.encode()).hexdigest()[:40]


def upload_key(owner: str, upload_id: str) -> str:
    """``uploads/<owner folder>/<upload id>.zip``; a malformed id is a 404, as a missing one."""
    if not isinstance(upload_id, str) or not UPLOAD_ID_RE.fullmatch(upload_id):
        raise NotFound(f"code upload {upload_id!r} not found", details={"upload_id": upload_id})
    return f"{UPLOAD_PREFIX}{owner_folder(owner)}/{upload_id}.zip"


def file_size(handle: BinaryIO) -> int:
    size = handle.seek(0, 2)
    handle.seek(0)
    return size


def file_sha256(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    handle.seek(0)
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    handle.seek(0)
    return digest.hexdigest()


def too_large(where: str, size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{where}: the upload is {size} bytes; at most {limit} are accepted",
        details={"field": where, "limit": limit},
    )
