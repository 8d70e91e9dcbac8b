"""A webhook receiver for tests (Alertmanager, Slack, a JSON sink): an ASGI app that keeps
every JSON body it is sent and answers with a fixed status."""

from __future__ import annotations

import json
from typing import Any


class Receiver:
    def __init__(self, status: int = 200, answer: bytes = b"ok") -> None:
        self.payloads: list[dict[str, Any]] = []
        self.status = status
        self.answer = answer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        self.payloads.append(json.loads(body))
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": self.answer})
