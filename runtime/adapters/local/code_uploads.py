"""Function code uploads in local mode: a raw PUT to the web service, kept in the state dir.

``<state dir>/triggers/uploads/<owner folder>/<upload id>.zip`` (mode 0600 files in 0700
folders). The body is streamed to a temporary file beside the target and renamed into place
only once complete and within the cap, so a reader never sees half an upload and an
overwrite replaces the file atomically (a reader holding the old one keeps reading it).
Uploads older than a day are removed when their owner starts a new one, as the AWS bucket's
lifecycle rule expires them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Final

from runtime.adapters.local.local_triggers import triggers_dir
from runtime.config import RuntimeSettings
from runtime.domain.code_uploads import owner_folder, too_large, upload_key
from runtime.domain.errors import NotFound
from runtime.domain.ports import CodeUploadTicket

UPLOAD_PATH: Final = "/v1/triggers/code-uploads/{upload_id}"
TICKET_SECONDS: Final = 15 * 60
KEPT_SECONDS: Final = 24 * 3600


class LocalCodeUploads:
    """:class:`runtime.domain.ports.CodeUploads` for ``octopus local up``."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> LocalCodeUploads:
        return cls(triggers_dir(settings), max_bytes=settings.trigger_code_max_bytes)

    def key(self, owner: str, upload_id: str) -> str:
        return upload_key(owner, upload_id)

    def path(self, owner: str, upload_id: str) -> Path:
        return self.root / self.key(owner, upload_id)

    def start(self, owner: str, upload_id: str) -> CodeUploadTicket:
        self._prune(self.root / "uploads" / owner_folder(owner))
        return CodeUploadTicket(
            upload_id=upload_id,
            method="PUT",
            # Relative: the route makes it absolute with the address the caller used.
            url=UPLOAD_PATH.format(upload_id=upload_id),
            fields={},
            headers={"Content-Type": "application/zip"},
            expires_at=datetime.now(UTC) + timedelta(seconds=TICKET_SECONDS),
            max_bytes=self.max_bytes,
        )

    async def receive(self, owner: str, upload_id: str, chunks: AsyncIterator[bytes]) -> int:
        """Stream a body to the caller's upload; PayloadTooLarge (nothing kept) past the cap."""
        target = self.path(owner, upload_id)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        size = 0
        try:
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise too_large("body", size, self.max_bytes)
                    handle.write(chunk)
            staging.replace(target)
        finally:
            staging.unlink(missing_ok=True)
        return size

    @contextlib.contextmanager
    def open(self, owner: str, upload_id: str) -> Iterator[BinaryIO]:
        try:
            handle = self.path(owner, upload_id).open("rb")
        except FileNotFoundError:
            raise NotFound(
                f"code upload {upload_id!r} not found", details={"upload_id": upload_id}
            ) from None
        with handle:
            yield handle

    @staticmethod
    def _prune(folder: Path) -> None:
        if not folder.is_dir():
            return
        cutoff = time.time() - KEPT_SECONDS
        for child in folder.iterdir():
            with contextlib.suppress(OSError):
                if child.stat().st_mtime < cutoff:
                    child.unlink()
