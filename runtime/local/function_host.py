"""Run a function trigger's handler locally, the way Lambda would, in a subprocess.

Each invocation starts ``<python> -c LOADER`` in the trigger's extracted code directory, with
only the trigger's environment (nothing of the fabric's: no settings, no secrets). The loader

- caps the address space at the trigger's memory (``RLIMIT_AS``) before importing anything
  of the user's; note this limits *virtual* memory, stricter than Lambda's limit on resident
  memory (a handler that starts many threads may need more than on Lambda);
- reads Lambda's MSK event from stdin, imports ``module.function`` from the code directory and
  calls it with ``(event, context)`` (``context`` has Lambda's common attributes and
  ``get_remaining_time_in_millis()``);
- writes the outcome (result or error) to a result file; stdout and stderr are the logs.

The parent kills the whole process group when the timeout passes, and logs what Lambda
logs: ``START``, the output, ``END``, ``REPORT`` and, on failure, the error — including
``Task timed out after N.NN seconds``.

Python version: the runtime's interpreter (``python3.12`` for ``python3.12``) when it is
installed, else the fabric's own, which the ``START`` line then names.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from runtime.domain.triggers import FunctionSpec

OUTPUT_MAX_BYTES: Final = 1024 * 1024  # per invocation, kept as log lines
RESULT_MAX_BYTES: Final = 6 * 1024 * 1024  # Lambda's synchronous response limit
LOCAL_FUNCTION_ARN_PREFIX: Final = "arn:local:lambda:local:000000000000:function:"

LOADER: Final = r"""
import importlib, json, math, os, resource, signal, sys, time, traceback

config = json.loads(os.environ.pop("OCTOPUS_FUNCTION_CONFIG"))
limit = int(config["memory_mb"]) * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
# Safety net if the runner dies mid-invocation: SIGALRM's default action ends the process.
signal.alarm(math.ceil(float(config["timeout_seconds"])) + 2)
deadline = time.monotonic() + float(config["timeout_seconds"])


class Context:
    function_name = config["function_name"]
    function_version = "$LATEST"
    invoked_function_arn = config["function_arn"]
    memory_limit_in_mb = str(config["memory_mb"])
    aws_request_id = config["request_id"]
    log_group_name = "/octopus/triggers/" + config["function_name"]
    log_stream_name = "local"

    @staticmethod
    def get_remaining_time_in_millis():
        return max(0, int((deadline - time.monotonic()) * 1000))


def finish(outcome):
    with open(config["result_path"], "w") as handle:
        json.dump(outcome, handle, default=str)


try:
    event = json.load(sys.stdin)
    module_name, _, function_name = config["handler"].rpartition(".")
    sys.path.insert(0, os.getcwd())
    handler = getattr(importlib.import_module(module_name), function_name)
    result = handler(event, Context())
    finish({"ok": True, "result": result})
except MemoryError:
    finish({"ok": False, "error_type": "MemoryError",
            "error": "memory limit of %s MB exceeded" % config["memory_mb"]})
except BaseException as exc:
    traceback.print_exc()
    finish({"ok": False, "error_type": type(exc).__name__, "error": str(exc)})
sys.stdout.flush()
sys.stderr.flush()
"""


@dataclass(frozen=True)
class FunctionRun:
    ok: bool
    error: str | None
    duration_ms: float
    result: Any = None


@functools.cache
def interpreter_for(runtime: str) -> tuple[str, bool]:
    """(python executable, whether it is the runtime's own version).

    ``python3.13`` on PATH counts only if it runs and is 3.13 (a pyenv shim for a version
    that is not selected is on PATH but fails).
    """
    found = shutil.which(runtime)
    wanted = runtime.removeprefix("python")
    if found:
        try:
            probe = subprocess.run(  # noqa: S603
                [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            probe = None
        if probe is not None and probe.returncode == 0 and probe.stdout.decode().strip() == wanted:
            return found, True
    return sys.executable, False


class FunctionHost:
    def __init__(
        self,
        *,
        trigger_id: str,
        function: FunctionSpec,
        code_dir: Path,
        log: Callable[[Sequence[tuple[int, str]]], None],
    ) -> None:
        self.trigger_id = trigger_id
        self.function = function
        self.code_dir = code_dir
        self._log = log
        self.python, self.exact_runtime = interpreter_for(function.runtime)

    def _environment(self, config: dict[str, Any]) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(self.code_dir),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LAMBDA_TASK_ROOT": str(self.code_dir),
            "AWS_LAMBDA_FUNCTION_NAME": config["function_name"],
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.function.memory_mb),
            "TZ": ":UTC",
        }
        env.update(self.function.environment)
        env["OCTOPUS_FUNCTION_CONFIG"] = json.dumps(config)
        return env

    def invoke(self, event: dict[str, Any]) -> FunctionRun:
        request_id = str(uuid.uuid4())
        timeout = float(self.function.timeout_seconds)
        with tempfile.TemporaryDirectory(prefix="octopus-fn-") as scratch:
            result_path = Path(scratch) / "result.json"
            config = {
                "handler": self.function.handler,
                "memory_mb": self.function.memory_mb,
                "timeout_seconds": timeout,
                "request_id": request_id,
                "function_name": f"trigger-{self.trigger_id}",
                "function_arn": f"{LOCAL_FUNCTION_ARN_PREFIX}trigger-{self.trigger_id}",
                "result_path": str(result_path),
            }
            runtime_note = (
                ""
                if self.exact_runtime
                else (
                    f" (local: {self.function.runtime} not installed, running Python "
                    f"{sys.version_info.major}.{sys.version_info.minor})"
                )
            )
            lines: list[tuple[int, str]] = [
                (_now_ms(), f"START RequestId: {request_id} Version: $LATEST{runtime_note}")
            ]
            started = time.monotonic()
            process = subprocess.Popen(  # noqa: S603 - our interpreter, our loader
                [self.python, "-c", LOADER],
                cwd=self.code_dir,
                env=self._environment(config),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so a timeout kills every child it started
            )
            timed_out = False
            try:
                output, _ = process.communicate(json.dumps(event).encode(), timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(process)
                output, _ = process.communicate()
            duration_ms = (time.monotonic() - started) * 1000.0
            lines.extend(_output_lines(output))
            run = self._outcome(result_path, process.returncode, timed_out, timeout, duration_ms)
        if run.error:
            lines.append((_now_ms(), f"[ERROR] {run.error}"))
        lines.append((_now_ms(), f"END RequestId: {request_id}"))
        lines.append(
            (
                _now_ms(),
                f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
                f"Memory Size: {self.function.memory_mb} MB",
            )
        )
        self._log(lines)
        return run

    def _outcome(
        self,
        result_path: Path,
        returncode: int | None,
        timed_out: bool,
        timeout: float,
        duration_ms: float,
    ) -> FunctionRun:
        if timed_out:
            return FunctionRun(False, f"Task timed out after {timeout:.2f} seconds", duration_ms)
        try:
            if result_path.stat().st_size > RESULT_MAX_BYTES:
                return FunctionRun(
                    False, "the function's response is larger than 6 MB", duration_ms
                )
            outcome = json.loads(result_path.read_text())
        except (OSError, ValueError):
            return FunctionRun(
                False, f"Runtime exited without a response (exit code {returncode})", duration_ms
            )
        if outcome.get("ok"):
            return FunctionRun(True, None, duration_ms, outcome.get("result"))
        return FunctionRun(
            False, f"{outcome.get('error_type', 'Error')}: {outcome.get('error', '')}", duration_ms
        )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _output_lines(output: bytes) -> list[tuple[int, str]]:
    now = _now_ms()
    if len(output) > OUTPUT_MAX_BYTES:
        dropped = len(output) - OUTPUT_MAX_BYTES
        output = output[-OUTPUT_MAX_BYTES:]
        head = [(now, f"[output truncated: first {dropped} bytes dropped]")]
    else:
        head = []
    text = output.decode("utf-8", errors="replace")
    return head + [(now, line) for line in text.splitlines() if line.strip()]


def _now_ms() -> int:
    return int(time.time() * 1000)
