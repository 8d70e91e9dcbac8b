"""Fixtures for the fakes' own tests: one served app per provider, and SDK clients on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import httpx2
import openai
import pytest

from simulation.providers import AnthropicFake, OpenAIFake, Served, anthropic_app, openai_app, serve

ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
OPENAI_HEADERS = {"authorization": "Bearer sk-test"}


@pytest.fixture(scope="session")
def openai_fake() -> OpenAIFake:
    return openai_app()


@pytest.fixture(scope="session")
def anthropic_fake() -> AnthropicFake:
    return anthropic_app()


@pytest.fixture(scope="session")
def openai_server(openai_fake: OpenAIFake) -> Iterator[Served]:
    with serve(openai_fake) as served:
        yield served


@pytest.fixture(scope="session")
def anthropic_server(anthropic_fake: AnthropicFake) -> Iterator[Served]:
    with serve(anthropic_fake) as served:
        yield served


@pytest.fixture
def oai(openai_server: Served) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=f"{openai_server.url}/v1", api_key="sk-test", max_retries=0)
    yield client
    client.close()


@pytest.fixture
async def aoai(openai_server: Served) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        base_url=f"{openai_server.url}/v1", api_key="sk-test", max_retries=0
    )
    yield client
    await client.close()


@pytest.fixture
def ant(anthropic_server: Served) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(
        base_url=anthropic_server.url, api_key="sk-ant-test", max_retries=0
    )
    yield client
    client.close()


@pytest.fixture
async def aant(anthropic_server: Served) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(
        base_url=anthropic_server.url, api_key="sk-ant-test", max_retries=0
    )
    yield client
    await client.close()


@pytest.fixture
def raw() -> Iterator[httpx2.Client]:
    """A plain HTTP client, for what the SDKs hide (raw bytes, headers, bad bodies)."""
    with httpx2.Client(timeout=30) as client:
        yield client
