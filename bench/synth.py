"""Synth time of the full fabric app as a ratio to an empty CDK app (goal: <= 1.5x).

Both are measured the same way: a fresh ``python`` process that builds the app and
calls ``app.synth()`` into a temporary directory, with the cdk.json context passed
the way the CDK CLI passes it (``CDK_CONTEXT_JSON``), several repetitions, median.
The Lambda dependency cache (.build-cache/) is warmed first, as after any first synth.

    .venv/bin/python bench/synth.py [--stage dev] [--repeat 3]
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

REPO = Path(__file__).resolve().parent.parent
# Same App settings as app.py (aws-cdk-lib's built-in CloudFormation validation off,
# cfn-lint in the test suite validates instead), so only the fabric's own work differs.
EMPTY_APP = "import aws_cdk as cdk\ncdk.App(builtin_cloud_formation_validation=False).synth()\n"


def _time_synth(argv: list[str], context: dict[str, object]) -> float:
    with tempfile.TemporaryDirectory() as outdir:
        env = {
            **os.environ,
            "CDK_OUTDIR": outdir,
            "CDK_CONTEXT_JSON": json.dumps(context),
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        }
        started = time.perf_counter()
        subprocess.run(argv, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def _listing(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    context = {**json.loads((REPO / "cdk.json").read_text())["context"], "stage": args.stage}
    full = [sys.executable, str(REPO / "app.py")]
    empty = [sys.executable, "-c", EMPTY_APP]
    _time_synth(full, context)  # warm the dependency cache and the OS file cache
    _time_synth(empty, {})
    full_times, empty_times = [], []
    for _ in range(args.repeat):  # interleaved, so load on the machine hits both alike
        empty_times.append(_time_synth(empty, {}))
        full_times.append(_time_synth(full, context))
    full_median, empty_median = statistics.median(full_times), statistics.median(empty_times)
    print(f"empty CDK app synth: median {empty_median:.2f} s  ({_listing(empty_times)})")
    print(f"fabric app synth ({args.stage}): median {full_median:.2f} s  ({_listing(full_times)})")
    print(f"ratio: {full_median / empty_median:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
