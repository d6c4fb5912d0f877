"""Start-up of the event-stream container: fetch the fabric's code bundle, check it, run it.

The container image is a public Lambda Python base image (same OS, CPython and
architecture the bundle is built for, boto3 included); the code is the very bundle the
Lambda functions run (``lambda_code.py``), published by ``cdk deploy`` to the CDK asset
bucket under ``<asset hash>.zip``. This file's source is passed to ``python3 -c`` as the
container's command (it runs before any of our code exists in the container), so it uses
only the standard library and boto3, and is tested as a module (tests/infra).

Integrity: the object is read with ``ExpectedBucketOwner`` (the fabric's account) over TLS;
after extraction the asset hash is recomputed from the bundle's own ``runtime/`` tree and
``requirements-lambda.txt`` exactly as ``lambda_code.bundle_hash`` computes it at synth
time, and must equal the hash the task definition names, or the container exits.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

SKIPPED_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")
REQUIREMENTS = "requirements-lambda.txt"


def source_hash(runtime_dir: Path) -> str:
    """``lambda_code.source_hash`` over an extracted ``runtime/`` tree."""
    digest = hashlib.sha256()
    files = []
    for path in runtime_dir.rglob("*"):
        relative = path.relative_to(runtime_dir)
        if any(part in SKIPPED_NAMES for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(SKIPPED_SUFFIXES):
            files.append(path)
    for path in sorted(files):
        digest.update(path.relative_to(runtime_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def bundle_hash(app_dir: Path, platform: str) -> str:
    """``lambda_code.bundle_hash`` of an extracted bundle (``platform``: version|tags)."""
    runtime_dir = app_dir / "runtime"
    requirements = hashlib.sha256()
    requirements.update((runtime_dir / REQUIREMENTS).read_bytes())
    requirements.update(platform.encode())
    combined = f"{requirements.hexdigest()[:32]}:{source_hash(runtime_dir)}"
    return hashlib.sha256(combined.encode()).hexdigest()


def fetch(s3: Any, *, bucket: str, key: str, owner: str, app_dir: Path) -> None:
    """Download the bundle (only from the fabric's own account) and extract it."""
    app_dir.mkdir(parents=True, exist_ok=True)
    archive = app_dir.parent / "bundle.zip"
    body = s3.get_object(Bucket=bucket, Key=key, ExpectedBucketOwner=owner)["Body"]
    with archive.open("wb") as out:
        for chunk in iter(lambda: body.read(1 << 20), b""):
            out.write(chunk)
    with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(app_dir)
    archive.unlink()


def main(argv: list[str], environ: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    import boto3

    app_dir = Path(environ.get("OCTOPUS_CODE_DIR", "/tmp/octopus/app"))  # noqa: S108
    fetch(
        boto3.client("s3"),
        bucket=environ["OCTOPUS_CODE_BUCKET"],
        key=environ["OCTOPUS_CODE_KEY"],
        owner=environ["OCTOPUS_CODE_OWNER"],
        app_dir=app_dir,
    )
    found = bundle_hash(app_dir, environ["OCTOPUS_CODE_PLATFORM"])
    if found != environ["OCTOPUS_CODE_HASH"]:
        sys.exit(f"code bundle hash {found} != expected {environ['OCTOPUS_CODE_HASH']}: refusing")
    if argv:
        # argv: the server command, e.g. uvicorn --factory ... (run as ``python -m uvicorn``).
        os.chdir(app_dir)
        os.execv(sys.executable, [sys.executable, "-m", *argv])  # noqa: S606
    return app_dir


if __name__ == "__main__":
    main(sys.argv[1:])
