"""cdk-nag (3 packs) and cfn-lint over every stage; reproducible synth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.config import load_stage_config
from stacks.nag import acknowledgements, nag_packs
from tests.infra.synthesis import CONTEXT, STAGES, Synthesized

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("stage", STAGES)
def test_cdk_nag_three_packs_have_no_unacknowledged_findings(
    synthesized: dict[str, Synthesized], stage: str
) -> None:
    app = synthesized[stage].app
    open_findings = []
    for pack in nag_packs():
        report = pack.validate_scope(app)  # type: ignore[attr-defined]
        for violation in report.violations:
            for resource in violation.violating_resources:
                open_findings.append(f"{violation.rule_name} @ {resource.construct_path}")
    assert open_findings == []


def test_every_acknowledgement_is_one_specific_finding_with_a_reason() -> None:
    config = load_stage_config({"stage": "staging", "stages": CONTEXT["stages"]})
    acks = acknowledgements(config)
    for ack in acks:
        assert ack.finding.startswith(("AwsSolutions-", "Serverless-", "NIST.800.53.R5-"))
        # IAM4/IAM5 are acknowledged per policy / per resource, never as a whole rule.
        if ack.finding.startswith(("AwsSolutions-IAM4", "AwsSolutions-IAM5")):
            assert ack.finding.endswith("]") and "[" in ack.finding
        assert len(ack.reason) > 40
    # No two acknowledgements for the same finding on the same construct.
    keys = [(a.stack, a.path, a.finding) for a in acks]
    assert len(keys) == len(set(keys))


def test_cfn_lint_reports_no_errors(synthesized: dict[str, Synthesized]) -> None:
    templates = [
        str(p) for s in synthesized.values() for p in sorted(s.outdir.glob("*.template.json"))
    ]
    assert len(templates) == sum(len(s.fabric.stacks) for s in synthesized.values())
    run = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "json", *templates],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(run.stdout or "[]")
    errors = [
        f"{f['Rule']['Id']} {f['Filename']}: {f['Message']}"
        for f in findings
        if f["Level"] == "Error"
    ]
    assert errors == []
    assert run.returncode in (0, 4, 8, 12), run.stderr  # 2 would mean errors; warnings/info allowed


def test_two_synths_give_identical_templates_and_assets(
    synthesized: dict[str, Synthesized], dev_again: Synthesized
) -> None:
    first = synthesized["dev"].outdir
    names = sorted(p.name for p in first.glob("*.json") if p.name != "tree.json")
    assert names == sorted(p.name for p in dev_again.outdir.glob("*.json") if p.name != "tree.json")
    for name in names:
        assert (first / name).read_bytes() == (dev_again.outdir / name).read_bytes(), name
