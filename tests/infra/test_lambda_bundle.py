"""Local bundling: built for Lambda's platform, cached by requirements hash, reproducible."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fabric_constructs import lambda_code
from tests.infra.synthesis import Synthesized

pytestmark = pytest.mark.infra


def test_second_build_uses_the_cache_without_pip(
    synthesized: dict[str, Synthesized], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pip(*_: object, **__: object) -> None:
        raise AssertionError("pip ran although the cache is complete")

    monkeypatch.setattr(subprocess, "run", no_pip)
    cached = lambda_code.ensure_dependencies()
    assert cached.name == lambda_code.requirements_hash()


def test_bundle_holds_runtime_and_aarch64_wheels_but_not_boto(
    synthesized: dict[str, Synthesized],
) -> None:
    outdir = synthesized["dev"].outdir
    (bundle,) = [p for p in outdir.glob("asset.*") if (p / "runtime").is_dir()]
    assert (bundle / "runtime" / "config.py").is_file()
    assert (bundle / "runtime" / "handlers" / "msk_public_access.py").is_file()
    assert not list(bundle.rglob("__pycache__"))
    assert not (bundle / "boto3").exists() and not (bundle / "botocore").exists()
    (kafka_ext,) = list((bundle / "confluent_kafka" / "cimpl").parent.glob("cimpl*.so"))
    assert "cpython-314-aarch64" in kafka_ext.name
    assert list((bundle / "pydantic_core").glob("*cpython-314-aarch64*.so"))


def test_asset_hash_changes_with_the_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = lambda_code.source_hash()
    fake_runtime = tmp_path / "runtime"
    fake_runtime.mkdir()
    (fake_runtime / "x.py").write_text("x = 1\n")
    monkeypatch.setattr(lambda_code, "RUNTIME_DIR", fake_runtime)
    one = lambda_code.source_hash()
    (fake_runtime / "x.py").write_text("x = 2\n")
    assert lambda_code.source_hash() not in {one, before}
