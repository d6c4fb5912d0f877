"""The README's deploy-side command works as written: the pinned CDK CLI synthesizes offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.infra
@pytest.mark.slow
def test_npx_cdk_synth_works_offline_without_credentials(tmp_path: Path) -> None:
    if not (REPO / "node_modules" / ".bin" / "cdk").exists() or shutil.which("npx") is None:
        pytest.fail("the pinned CDK CLI is not installed: run `make bootstrap` (npm ci)")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and key not in {"CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"}
    }
    env.update(
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        CDK_DISABLE_CLI_TELEMETRY="true",
        # No credentials anywhere: a lookup would fail the synth.
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    out = tmp_path / "cdk.out"
    result = subprocess.run(
        ["npx", "cdk", "synth", "--quiet", "--no-notices", "-c", "stage=prod", "-o", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    stacks = [
        name for name, a in manifest["artifacts"].items() if a["type"] == "aws:cloudformation:stack"
    ]
    assert {s.rsplit("-", 1)[-1] for s in stacks} >= {
        "Network",
        "Cluster",
        "State",
        "Triggers",
        "Api",
        "Observability",
    }
