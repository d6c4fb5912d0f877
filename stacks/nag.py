"""cdk-nag: the rule packs the fabric is checked with, and its acknowledged findings."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks, ServerlessChecks

from stacks.config import StageConfig


def nag_packs() -> list[object]:
    return [AwsSolutionsChecks(), ServerlessChecks(), NIST80053R5Checks()]


def acknowledge_findings(*, fabric_stacks: Sequence[cdk.Stack], config: StageConfig) -> None:
    """Filled in from the findings of a full synth (each one justified)."""
