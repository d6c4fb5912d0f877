"""Synth time of the full fabric app as a ratio to an empty CDK app (goal: <= 1.5x).

Both are measured the same way: a fresh ``python`` process (same interpreter, same
flags, same environment) that builds its app and calls ``app.synth()`` into a new
temporary directory, with the same context passed the way ``npx cdk synth`` passes
it (``CDK_CONTEXT_JSON``: cdk.json's context plus the keys the CLI derives from
cdk.json's settings), several interleaved repetitions, median.

What is warm, for both, as after any first synth on a developer's machine: the
Lambda dependency cache (.build-cache/), the jsii package cache, the OS file cache
and Python's bytecode cache (``PYTHONDONTWRITEBYTECODE`` is dropped from the
environment: Python's default; the fabric's own modules would otherwise be compiled
from source on every run). What is cold: the processes (python + jsii's node) and
the cloud assembly directory (assets are staged into it on every run).

A third app is the floor of any app written like the fabric: it imports the fabric's
code (``app.py``'s imports: every stack and construct module, so every ``aws_cdk``
submodule they use, pydantic and the config models), reads the stage config, and
synthesizes an empty ``App`` -- no construct built. Its ratio to the empty app is what no
change to the fabric's constructs can go below (only importing fewer ``aws_cdk``
submodules, i.e. using fewer AWS services, could).

Printed: median wall time of each, and CPU time (user + system of python and node,
the steadier figure when other work shares the machine).

    .venv/bin/python bench/synth.py [--stage dev] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
# Same App settings as app.py (aws-cdk-lib's built-in CloudFormation validation off,
# cfn-lint in the test suite validates instead), so only the fabric's own work differs.
EMPTY_APP = "import aws_cdk as cdk\ncdk.App(builtin_cloud_formation_validation=False).synth()\n"
# app.py up to build_fabric(): its imports and the config, then an empty synth.
FLOOR_APP = (
    "import aws_cdk as cdk\n"
    "import app\n"
    "application = cdk.App(builtin_cloud_formation_validation=False)\n"
    "app.load_stage_config(application.node)\n"
    "application.synth()\n"
)


def cli_context(stage: str) -> dict[str, object]:
    """The context ``npx cdk synth -c stage=STAGE`` hands the app (aws-cdk CLI 2.1148)."""
    settings = json.loads((REPO / "cdk.json").read_text())
    context: dict[str, object] = {**settings["context"], "stage": stage}
    if settings.get("pathMetadata", True):
        context["aws:cdk:enable-path-metadata"] = True
    if settings.get("assetMetadata", True):
        context["aws:cdk:enable-asset-metadata"] = True
    if settings.get("versionReporting", True):
        context["aws:cdk:version-reporting"] = True
    else:
        context["aws:cdk:disable-version-reporting"] = True
    context["aws:cdk:bundling-stacks"] = settings.get("bundlingStacks", ["**"])
    context["@aws-cdk/core:failSynthOnValidationErrors"] = False
    return context


def _environment(outdir: str, context: dict[str, object]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        CDK_OUTDIR=outdir,
        CDK_CONTEXT_JSON=json.dumps(context),
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
    )
    return env


class Sample(NamedTuple):
    wall: float  # seconds, what the goal is stated in
    cpu: float  # user + system seconds of python and its jsii node processes


def _time_synth(argv: list[str], context: dict[str, object]) -> Sample:
    with tempfile.TemporaryDirectory() as outdir:
        env = _environment(outdir, context)
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
        # wait4 reports the child's CPU time including the node processes it waited for.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"synth failed: {' '.join(argv)}")
        return Sample(wall, usage.ru_utime + usage.ru_stime)


def _listing(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def _report(name: str, samples: list[Sample]) -> tuple[float, float]:
    walls, cpus = [s.wall for s in samples], [s.cpu for s in samples]
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"{name}: median {wall:.2f} s wall ({_listing(walls)}), {cpu:.2f} s CPU")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    context = cli_context(args.stage)
    full = [sys.executable, str(REPO / "app.py")]
    empty = [sys.executable, "-c", EMPTY_APP]
    floor = [sys.executable, "-c", FLOOR_APP]
    for argv in (full, empty, floor):  # warm the dependency, bytecode and OS file caches
        _time_synth(argv, context)
    full_times: list[Sample] = []
    empty_times: list[Sample] = []
    floor_times: list[Sample] = []
    for _ in range(args.repeat):  # interleaved, so load on the machine hits all alike
        empty_times.append(_time_synth(empty, context))
        floor_times.append(_time_synth(floor, context))
        full_times.append(_time_synth(full, context))
    empty_wall, empty_cpu = _report("empty CDK app synth", empty_times)
    floor_wall, floor_cpu = _report("fabric code imported, no construct built", floor_times)
    full_wall, full_cpu = _report(f"fabric app synth ({args.stage})", full_times)
    # CPU time is the steadier figure on a shared machine; the goal is stated in wall time.
    ratio, cpu_ratio = full_wall / empty_wall, full_cpu / empty_cpu
    print(
        f"floor (imports only): {floor_wall / empty_wall:.2f}x wall, "
        f"{floor_cpu / empty_cpu:.2f}x CPU of the empty app"
    )
    print(f"ratio: {ratio:.2f}x (goal <= 1.5x); CPU ratio {cpu_ratio:.2f}x")


if __name__ == "__main__":
    main()
