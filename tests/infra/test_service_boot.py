"""The event-stream container's start-up: fetch the bundle from S3 (moto), check its hash."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from fabric_constructs import service_boot
from fabric_constructs.lambda_code import (
    PIP_PLATFORMS,
    PYTHON_VERSION,
    RUNTIME_DIR,
    _source_files,
    requirements_hash,
    source_hash,
)

pytestmark = pytest.mark.infra
PLATFORM = f"{PYTHON_VERSION}|{'|'.join(PIP_PLATFORMS)}"
ACCOUNT = "123456789012"  # moto's account


def _synth_hash() -> str:
    """``lambda_code.bundle_hash`` computed now (the cached one dates from the session's synth,
    and runtime/ may be edited while the suite runs)."""
    return hashlib.sha256(f"{requirements_hash()}:{source_hash()}".encode()).hexdigest()


def _bundle_zip(tmp_path: Path) -> tuple[Path, str]:
    """A zip laid out like the Lambda bundle: runtime/ (as bundled) + a dependency."""
    tree = tmp_path / "tree"
    expected = _synth_hash()
    for path in _source_files(RUNTIME_DIR):
        out = tree / "runtime" / path.relative_to(RUNTIME_DIR)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
    (tree / "uvicorn").mkdir()
    (tree / "uvicorn" / "__init__.py").write_text("")
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(tree).as_posix())
    return archive, expected


def test_the_container_computes_the_same_hash_as_synth(tmp_path: Path) -> None:
    archive, expected = _bundle_zip(tmp_path)
    app = tmp_path / "app"
    with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(app)
    assert service_boot.bundle_hash(app, PLATFORM) == expected
    # One changed file in the runtime tree changes the hash.
    (app / "runtime" / "config.py").write_text("# tampered\n")
    assert service_boot.bundle_hash(app, PLATFORM) != expected


@mock_aws
def test_main_fetches_checks_and_refuses_a_foreign_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="cdk-assets")
    archive, expected = _bundle_zip(tmp_path)
    s3.put_object(Bucket="cdk-assets", Key="code.zip", Body=archive.read_bytes())
    environ = {
        "OCTOPUS_CODE_BUCKET": "cdk-assets",
        "OCTOPUS_CODE_KEY": "code.zip",
        "OCTOPUS_CODE_OWNER": ACCOUNT,
        "OCTOPUS_CODE_HASH": expected,
        "OCTOPUS_CODE_PLATFORM": PLATFORM,
        "OCTOPUS_CODE_DIR": str(tmp_path / "run" / "app"),
    }
    app = service_boot.main([], environ)
    assert (app / "runtime" / "streams" / "service.py").is_file()
    assert (app / "uvicorn" / "__init__.py").is_file()
    assert not (app.parent / "bundle.zip").exists()
    with pytest.raises(SystemExit, match="refusing"):
        service_boot.main([], {**environ, "OCTOPUS_CODE_HASH": "0" * 64})
