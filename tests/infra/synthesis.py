"""Synthesizing the fabric for the infrastructure tests: every stage ONCE per session.

jsii start-up costs seconds, so all stages are built in this one process and
shared by every test; stage ``dev`` is built a second time for the
reproducibility check.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk

from stacks.config import load_stage_config
from stacks.fabric import Fabric, build_fabric

REPO = Path(__file__).resolve().parents[2]
CDK_JSON = json.loads((REPO / "cdk.json").read_text())
CONTEXT: dict[str, Any] = CDK_JSON["context"]
STAGES: list[str] = sorted(CONTEXT["stages"])


@dataclass
class Synthesized:
    stage: str
    app: cdk.App
    fabric: Fabric
    outdir: Path
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)

    def template(self, part: str) -> dict[str, Any]:
        return self.templates[f"Octopus-{self.stage}-{part}"]

    def resources(self, type_name: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """(stack, logical id, resource) over every template of the stage."""
        found = []
        for stack, template in self.templates.items():
            for logical_id, resource in template.get("Resources", {}).items():
                if type_name is None or resource["Type"] == type_name:
                    found.append((stack, logical_id, resource))
        return found


def synth_stage(stage: str, outdir: Path) -> Synthesized:
    app = cdk.App(
        context={**CONTEXT, "stage": stage},
        outdir=str(outdir),
        builtin_cloud_formation_validation=False,  # cfn-lint validates instead
    )
    fabric = build_fabric(app, load_stage_config(app.node))
    app.synth()
    result = Synthesized(stage, app, fabric, outdir)
    for path in sorted(outdir.glob("*.template.json")):
        result.templates[path.name.removesuffix(".template.json")] = json.loads(path.read_text())
    return result
