"""Lambda code for the fabric's functions, bundled on the host without Docker.

The bundle is the ``runtime/`` package tree plus the third-party packages of
``runtime/requirements-lambda.txt`` built for Lambda's platform (manylinux
aarch64, the functions' CPython). pip runs once per requirements hash into
``.build-cache/``; later synths copy from there. The asset hash is computed from
the requirements hash and the runtime sources, so two synths of the same tree
stage byte-identical assets and templates.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_DIR = REPO_ROOT / "runtime"
REQUIREMENTS = RUNTIME_DIR / "requirements-lambda.txt"
CACHE_DIR = REPO_ROOT / ".build-cache" / "lambda-deps"

# The newest Lambda Python runtime aws-cdk-lib offers; wheels for every dependency
# (confluent-kafka, pydantic-core, cryptography, cffi, charset-normalizer) exist
# for cp314 manylinux aarch64 (checked with pip download --only-binary=:all:).
PYTHON_RUNTIME = lambda_.Runtime.PYTHON_3_14
PYTHON_VERSION = "3.14"
ARCHITECTURE = lambda_.Architecture.ARM_64
PIP_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux2014_aarch64")
# The Lambda runtime ships these; bundling them would add ~31 MB for nothing.
PROVIDED_BY_RUNTIME = ("boto3", "botocore", "s3transfer")
_SKIPPED_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def _source_files(root: Path) -> list[Path]:
    files = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part in _SKIPPED_NAMES for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(_SKIPPED_SUFFIXES):
            files.append(path)
    return sorted(files)


def requirements_hash() -> str:
    """Identifies one dependency build: requirements, platform and Python version."""
    digest = hashlib.sha256()
    digest.update(REQUIREMENTS.read_bytes())
    digest.update(f"{PYTHON_VERSION}|{'|'.join(PIP_PLATFORMS)}".encode())
    return digest.hexdigest()[:32]


def source_hash() -> str:
    digest = hashlib.sha256()
    for path in _source_files(RUNTIME_DIR):
        digest.update(path.relative_to(RUNTIME_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@cache
def bundle_hash() -> str:
    """The custom asset hash: stable across synths, changes with any input."""
    return hashlib.sha256(f"{requirements_hash()}:{source_hash()}".encode()).hexdigest()


def ensure_dependencies() -> Path:
    """Install the Lambda dependencies once per requirements hash; return the cache dir."""
    target = CACHE_DIR / requirements_hash()
    if (target / ".complete").exists():
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="deps-", dir=CACHE_DIR))
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-compile", "--only-binary=:all:", "--implementation", "cp",
        "--python-version", PYTHON_VERSION,
        *[flag for platform in PIP_PLATFORMS for flag in ("--platform", platform)],
        "--target", str(staging), "--requirement", str(REQUIREMENTS),
    ]  # fmt: skip
    try:
        subprocess.run(command, check=True)  # noqa: S603 (fixed argv, no shell)
        for entry in list(staging.iterdir()):
            name = entry.name.split("-")[0].lower()
            if name in PROVIDED_BY_RUNTIME or entry.name == "bin":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        (staging / ".complete").write_text(requirements_hash())
        if target.exists():  # another process finished first
            shutil.rmtree(staging)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _link(source: str, destination: str) -> None:
    try:
        os.link(source, destination)  # same filesystem: no copy needed
    except OSError:
        shutil.copyfile(source, destination)


def _link_tree(source: Path, destination: Path) -> None:
    """Mirror ``source`` (the dependency cache) into ``destination`` with hard links.

    One ``os.walk`` and one ``mkdir`` per directory: this runs on every synth into
    a fresh cloud assembly (~1,800 files), so it avoids per-file path objects.
    """
    root = str(source)
    for current, dirs, files in os.walk(root):
        dirs.sort()
        relative = os.path.relpath(current, root)
        target = str(destination) if relative == "." else os.path.join(destination, relative)
        os.makedirs(target, exist_ok=True)
        for name in sorted(files):
            if relative == "." and name == ".complete":
                continue
            _link(os.path.join(current, name), os.path.join(target, name))


def _copy_files(source: Path, destination: Path, files: list[Path]) -> None:
    # Copied, not linked: an in-place edit of a source file must not change an
    # already staged asset whose hash names the old content.
    made: set[Path] = set()
    for path in files:
        out = destination / path.relative_to(source)
        if out.parent not in made:
            out.parent.mkdir(parents=True, exist_ok=True)
            made.add(out.parent)
        shutil.copyfile(path, out)


@jsii.implements(cdk.ILocalBundling)
class LocalPipBundling:
    """Builds the bundle on the host: cached pip install + the runtime/ tree."""

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_: object) -> bool:
        out = Path(output_dir)
        _link_tree(ensure_dependencies(), out)
        _copy_files(RUNTIME_DIR, out / "runtime", _source_files(RUNTIME_DIR))
        return True


# Used only when local bundling is impossible (it never is on Linux/macOS with pip).
_DOCKER_FALLBACK = cdk.BundlingOptions(
    image=PYTHON_RUNTIME.bundling_image,
    command=[
        "bash", "-c",
        "pip install -r requirements-lambda.txt -t /asset-output && cp -r . /asset-output/runtime",
    ],
    local=LocalPipBundling(),
)  # fmt: skip


def fabric_code() -> lambda_.Code:
    """The code asset of every fabric function (API, authorizer, custom resources)."""
    return lambda_.Code.from_asset(
        str(RUNTIME_DIR),
        asset_hash=bundle_hash(),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=_DOCKER_FALLBACK,
    )


def fabric_asset_options() -> dict[str, object]:
    """Keyword options for an ``aws_s3_assets.Asset`` holding the same bundle."""
    return {
        "path": str(RUNTIME_DIR),
        "asset_hash": bundle_hash(),
        "asset_hash_type": cdk.AssetHashType.CUSTOM,
        "bundling": _DOCKER_FALLBACK,
    }
