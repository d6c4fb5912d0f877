"""Function code uploads on AWS: presigned S3 POSTs into the fabric's code bucket.

The API never receives the zip: the caller POSTs it straight to S3 with a form the API signed
for exactly ``uploads/<caller>/<upload id>.zip``, a size between 1 byte and
``trigger_code_max_bytes`` (S3 refuses anything else) and 15 minutes. Before a trigger uses
it, the core reads it back here (to a temporary file: it may be larger than is wise to hold
in memory) to check it as it checks inline code. The bucket's lifecycle rule expires uploads
after a day.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from runtime.config import RuntimeSettings
from runtime.domain.code_uploads import too_large, upload_key
from runtime.domain.errors import NotFound, Unavailable
from runtime.domain.ports import CodeUploadTicket

TICKET_SECONDS: Final = 15 * 60
_CHUNK: Final = 1024 * 1024
# Uploads up to this size are checked in memory; larger ones spill to /tmp.
_IN_MEMORY_BYTES: Final = 8 * 1024 * 1024
_MISSING: Final = frozenset({"404", "NoSuchKey", "NotFound"})


class S3CodeUploads:
    """:class:`runtime.domain.ports.CodeUploads` on S3 (``settings.trigger_code_bucket``)."""

    def __init__(self, settings: RuntimeSettings, *, s3_client: Any = None) -> None:
        if not settings.trigger_code_bucket:
            raise Unavailable("trigger_code_bucket is not configured")
        self.bucket = settings.trigger_code_bucket
        self.max_bytes = settings.trigger_code_max_bytes
        self._region = settings.region if settings.region != "local" else None
        self._s3 = s3_client

    @property
    def s3(self) -> Any:
        if self._s3 is None:  # lazily: the API builds this at start, without a call
            self._s3 = boto3.client("s3", region_name=self._region)
        return self._s3

    def key(self, owner: str, upload_id: str) -> str:
        return upload_key(owner, upload_id)

    def start(self, owner: str, upload_id: str) -> CodeUploadTicket:
        key = self.key(owner, upload_id)
        try:
            post = self.s3.generate_presigned_post(
                Bucket=self.bucket,
                Key=key,
                Fields={"Content-Type": "application/zip"},
                Conditions=[
                    ["content-length-range", 1, self.max_bytes],
                    {"Content-Type": "application/zip"},
                ],
                ExpiresIn=TICKET_SECONDS,
            )
        except (BotoCoreError, ClientError) as exc:
            raise Unavailable(f"cannot sign a code upload: {exc}") from exc
        return CodeUploadTicket(
            upload_id=upload_id,
            method="POST",
            url=str(post["url"]),
            fields={str(k): str(v) for k, v in post["fields"].items()},
            headers={},
            expires_at=datetime.now(UTC) + timedelta(seconds=TICKET_SECONDS),
            max_bytes=self.max_bytes,
        )

    @contextlib.contextmanager
    def open(self, owner: str, upload_id: str) -> Iterator[BinaryIO]:
        key = self.key(owner, upload_id)
        missing = NotFound(f"code upload {upload_id!r} not found", details={"upload_id": upload_id})
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=key)
            # Refuse before downloading: S3 enforced the form's range, but be sure.
            declared = int(head["ContentLength"])
            if declared > self.max_bytes:
                raise too_large("function.code_upload_id", declared, self.max_bytes)
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING:
                raise missing from None
            raise Unavailable(f"cannot read code upload {upload_id!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise Unavailable(f"cannot read code upload {upload_id!r}: {exc}") from exc
        with tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY_BYTES) as handle:
            size = 0
            with contextlib.closing(body):
                while chunk := body.read(_CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise too_large("function.code_upload_id", size, self.max_bytes)
                    handle.write(chunk)
            handle.seek(0)
            yield handle  # type: ignore[misc]
