"""Run a fake provider in its own process (benchmarks: no GIL shared with the measured code).

    python -m simulation.providers openai --port 9100 --latency-ms 300 --ttft-ms 120
    python -m simulation.providers anthropic --port 0        # 0: any free port

Prints ``listening on http://HOST:PORT`` on stdout once it accepts connections; stops
on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn

from .anthropic_fake import anthropic_app
from .openai_fake import openai_app
from .server import LOOPBACK, bind, uvicorn_config


class _AnnouncingServer(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if sockets:
            host, port = sockets[0].getsockname()[:2]
            sys.stdout.write(f"listening on http://{host}:{port}\n")
            sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m simulation.providers", description="Run a fake."
    )
    parser.add_argument("kind", choices=("openai", "anthropic"))
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any)")
    args = parser.parse_args(argv)
    factory = openai_app if args.kind == "openai" else anthropic_app
    app = factory(
        latency_ms=args.latency_ms,
        ttft_ms=args.ttft_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        api_key=args.api_key,
        max_recorded=1,
    )
    sock = bind(args.host, args.port)
    _AnnouncingServer(uvicorn_config(app)).run(sockets=[sock])


if __name__ == "__main__":
    main()
