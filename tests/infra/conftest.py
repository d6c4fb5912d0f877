"""Session fixtures: every stage is synthesized once per test session (jsii start-up is slow)."""

from __future__ import annotations

import pytest

from tests.infra.synthesis import STAGES, Synthesized, synth_stage


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synthesized]:
    return {stage: synth_stage(stage, tmp_path_factory.mktemp(f"cdk-{stage}")) for stage in STAGES}


@pytest.fixture(scope="session")
def dev_again(
    tmp_path_factory: pytest.TempPathFactory, synthesized: dict[str, Synthesized]
) -> Synthesized:
    return synth_stage("dev", tmp_path_factory.mktemp("cdk-dev-again"))
