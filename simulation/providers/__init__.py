"""Fake OpenAI and Anthropic providers for tests and benchmarks (plain ASGI apps).

They speak the real wire formats closely enough for the official SDKs, streaming helpers
included, and are deterministic: the same request gets the same bytes. Typical use::

    from simulation.providers import FakeReply, openai_app, serve

    app = openai_app(responder=lambda body, headers: FakeReply(text="A"))
    with serve(app) as served:
        client = OpenAI(base_url=f"{served.url}/v1", api_key="sk-test")
        ...
        assert app.requests[-1].json()["model"] == "gpt-4o"

See ``control`` for the ``x-fake-*`` request headers (errors, latency, tool calls, size,
broken streams, split UTF-8), ``reply`` for scripted replies, ``openai_fake`` and
``anthropic_fake`` for each API, ``server`` for serving in a thread or a process.
"""

from .anthropic_fake import AnthropicFake, anthropic_app
from .asgi import RecordedRequest, StreamCut
from .control import Control, Timing
from .openai_fake import OpenAIFake, openai_app
from .prompt import last_user_text
from .provider import FakeProvider
from .reply import UTF8_SAMPLE, FakeReply, FakeUsage, Responder, fail_first
from .server import Served, serve, serve_subprocess

__all__ = [
    "UTF8_SAMPLE",
    "AnthropicFake",
    "Control",
    "FakeProvider",
    "FakeReply",
    "FakeUsage",
    "OpenAIFake",
    "RecordedRequest",
    "Responder",
    "Served",
    "StreamCut",
    "Timing",
    "anthropic_app",
    "fail_first",
    "last_user_text",
    "openai_app",
    "serve",
    "serve_subprocess",
]
