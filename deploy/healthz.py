#!/usr/bin/env python3
"""`shadowjudge-healthz PORT`: exit 0 when http://127.0.0.1:PORT/healthz answers 200, else 1.

For health checks that must reach a role on loopback (compose healthchecks, the sidecar's exec
readiness probe in Kubernetes: it listens on 127.0.0.1 only, where an httpGet probe cannot
reach it). Standard library only, so it starts in tens of milliseconds.
"""

import sys
import urllib.request


def main() -> int:
    url = f"http://127.0.0.1:{int(sys.argv[1])}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310 - a fixed loopback URL
            return 0 if answer.status == 200 else 1
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)  # noqa: T201
        return 1


if __name__ == "__main__":
    sys.exit(main())
