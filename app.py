#!/usr/bin/env python3
"""The Octopus Event Fabric CDK app: ``npx cdk synth -c stage=dev`` (default stage: dev).

Context:
- ``stage``: which block of the ``stages`` context (cdk.json) to deploy;
- ``nag``: ``true`` runs the cdk-nag packs (AwsSolutions, Serverless, NIST 800-53 R5)
  during synth and fails on any unacknowledged finding (the test suite always does).
"""

from __future__ import annotations

import sys

import aws_cdk as cdk

from stacks.config import StageConfigError, load_stage_config
from stacks.fabric import build_fabric
from stacks.nag import nag_packs


def main() -> None:
    # cfn-lint (tests/infra) is the template validator; aws-cdk-lib's built-in
    # CloudFormation validation would add ~5 s to every synth and only warns.
    app = cdk.App(builtin_cloud_formation_validation=False)
    try:
        config = load_stage_config(app.node)
    except StageConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    build_fabric(app, config)
    if str(app.node.try_get_context("nag")).lower() == "true":
        cdk.Validations.of(app).add_plugins(*nag_packs())  # type: ignore[arg-type]
    app.synth()


if __name__ == "__main__":
    main()
