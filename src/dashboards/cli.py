"""The `shadowjudge` command: every role, alone (`mirror`, ...) or together (`run`).

Settings are loaded once here and passed down. The supervisor owns the signals: SIGTERM or
SIGINT asks every server to stop taking requests and every worker to finish what it holds,
then everything is closed in the reverse order of the data flow's start.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

from dashboards.settings import Settings, load_settings
from mirror.bus import MemoryBus
from mirror.errors import ConfigError
from mirror.server import SupervisedServer, build_sidecar, make_server

log = logging.getLogger("shadowjudge")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shadowjudge", description=__doc__.splitlines()[0])
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help="settings file (default: ./shadowjudge.yaml if present, else built-in defaults)",
    )
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="every role in one process (memory bus, embedded store)")
    commands.add_parser("mirror", help="the sidecar proxy alone")
    commands.add_parser("check", help="validate the settings file and print the result")
    calibrate = commands.add_parser(
        "calibrate", help="check a detector against labelled data (see `calibrate refusal -h`)"
    )
    calibrate.add_argument("detector", choices=["refusal"])
    calibrate.add_argument("options", nargs=argparse.REMAINDER)
    return parser


async def supervise(servers: Sequence[SupervisedServer]) -> None:
    """Run servers until SIGTERM/SIGINT, then stop them together."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    await asyncio.gather(*(server.serve() for server in servers))


async def run_mirror(settings: Settings) -> None:
    sidecar = build_sidecar(settings.sidecar, settings.providers, settings.capture, settings.bus)
    log.info("sidecar listening on %s, bus %s", settings.sidecar.listen, settings.bus.url)
    await supervise([make_server(sidecar, settings.sidecar.listen)])


async def run_all(settings: Settings) -> None:
    bus = MemoryBus(settings.bus.memory_capacity) if settings.bus.is_memory else None
    if bus is not None:
        await bus.start()
    sidecar = build_sidecar(
        settings.sidecar, settings.providers, settings.capture, settings.bus, bus=bus
    )
    log.info("sidecar listening on %s, bus %s", settings.sidecar.listen, settings.bus.url)
    try:
        await supervise([make_server(sidecar, settings.sidecar.listen)])
    finally:
        if bus is not None:
            await bus.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "calibrate":  # works on a CSV alone: no settings needed
        from judge.calibrate import main as calibrate_refusal

        return calibrate_refusal(args.options)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"shadowjudge: bad configuration\n{exc}", file=sys.stderr)  # noqa: T201
        return 2
    if args.command == "check":
        print(settings.model_dump_json(indent=2))  # noqa: T201 - secrets are env names only
        return 0
    if args.command == "mirror":
        uvloop.run(run_mirror(settings))
    elif args.command == "run":
        uvloop.run(run_all(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
