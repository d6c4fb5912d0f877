"""``python -m runtime.local up|down|status|logs`` — the local fabric without the CLI.

Exit codes: 0 success; 1 an error (one line on stderr); status: 0 running and
healthy, 3 running but a service is unhealthy, 4 not running.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from runtime.local.fabric import (
    LocalFabricError,
    LocalOptions,
    down,
    logs,
    run_supervisor,
    status,
    up,
)
from runtime.local.state import DEFAULT_STATE_DIR

EXIT_ERROR = 1
EXIT_UNHEALTHY = 3
EXIT_NOT_RUNNING = 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.local", description="Run the Octopus fabric on this machine."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def state_dir(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)

    def run_options(sub: argparse.ArgumentParser) -> None:
        state_dir(sub)
        sub.add_argument("--host", default="127.0.0.1", help="web service bind address")
        sub.add_argument("--api-port", type=int, default=8000)
        sub.add_argument("--broker-port", type=int, default=9092)
        sub.add_argument(
            "--log-level", choices=["debug", "info", "warning", "error"], default="info"
        )

    start = commands.add_parser("up", help="start the local fabric")
    run_options(start)
    start.add_argument("--detach", action="store_true", help="run in the background")
    # The detached supervisor itself (started by `up --detach`).
    run_options(commands.add_parser("_supervise"))
    state_dir(commands.add_parser("down", help="stop the local fabric"))
    show = commands.add_parser("status", help="what runs and whether it is healthy")
    state_dir(show)
    show.add_argument("--json", action="store_true")
    tail = commands.add_parser("logs", help="print the logs")
    state_dir(tail)
    tail.add_argument("service", nargs="?", help="broker, api, fabric, … (default: all)")
    tail.add_argument("-f", "--follow", action="store_true")
    return parser


def _options(args: argparse.Namespace, *, detach: bool) -> LocalOptions:
    return LocalOptions(
        state_dir=args.state_dir,
        host=args.host,
        api_port=args.api_port,
        broker_port=args.broker_port,
        detach=detach,
        log_level=args.log_level,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(highlight=False)
    try:
        if args.command == "up":
            up(_options(args, detach=args.detach))
        elif args.command == "_supervise":
            run_supervisor(_options(args, detach=False), console=None, keep_failed_record=True)
        elif args.command == "down":
            stopped = down(args.state_dir)
            console.print("Local fabric stopped." if stopped else "No local fabric was running.")
        elif args.command == "status":
            return _status(console, args.state_dir, as_json=args.json)
        elif args.command == "logs":
            for line in logs(args.state_dir, follow=args.follow, service=args.service):
                print(line, flush=args.follow)
    except LocalFabricError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as error:
        problems = "; ".join(str(item["msg"]) for item in error.errors())
        print(f"error: {problems}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 0
    return 0


def _status(console: Console, state_dir: Path, *, as_json: bool) -> int:
    current = status(state_dir)
    if current is None:
        if as_json:
            print(json.dumps({"running": False}))
        else:
            console.print("No local fabric is running.")
        return EXIT_NOT_RUNNING
    if as_json:
        print(json.dumps({"running": True, **current.model_dump(mode="json")}))
    else:
        console.print(f"Local fabric ({current.phase}), supervisor pid {current.supervisor_pid}")
        console.print(f"  API     {current.api_url}   docs {current.docs_url}")
        console.print(f"  Broker  {current.bootstrap_servers}")
        for service in current.services:
            mark = "[green]healthy[/green]" if service.healthy else "[red]unhealthy[/red]"
            console.print(
                f"  {service.name:<15} pid {service.pid}  {mark}  restarts {service.restarts}"
                + (f"  ({service.detail})" if service.detail else "")
            )
    return 0 if current.healthy else EXIT_UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
