"""The fake's embeddings endpoint serving the offline models, through the official SDK."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx2
import numpy as np
import openai
import pytest

from simulation.embeddings import E5Model, offline_models, split_e5_prefix
from simulation.providers import OpenAIFake, Served, openai_app, serve

from .conftest import OPENAI_HEADERS


@pytest.fixture(scope="module")
def fake() -> OpenAIFake:
    return openai_app(embedders=offline_models())


@pytest.fixture(scope="module")
def served(fake: OpenAIFake) -> Iterator[Served]:
    with serve(fake) as running:
        yield running


@pytest.fixture
def client(served: Served) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{served.url}/v1", api_key="sk-test", max_retries=0) as c:
        yield c


def vectors(response: object) -> np.ndarray:
    data = sorted(response.data, key=lambda d: d.index)  # type: ignore[attr-defined]
    return np.asarray([d.embedding for d in data])


def test_models_are_listed(client: openai.OpenAI) -> None:
    names = [m.id for m in client.models.list()]
    assert {"wordllama-l2", "multilingual-e5-small", "multilingual-e5-small-enpt"} <= set(names)
    assert "text-embedding-3-small" in names


def test_wordllama_real_vectors_float_and_base64(client: openai.OpenAI, served: Served) -> None:
    texts = ["How do I open a file for reading?", "Open a file and return a stream.", "Cats"]
    floats = client.embeddings.create(model="wordllama-l2", input=texts, encoding_format="float")
    default = client.embeddings.create(model="wordllama-l2", input=texts)  # SDK asks base64
    a, b = vectors(floats), vectors(default)
    assert a.shape == (3, 256) and np.allclose(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert a[0] @ a[1] > a[0] @ a[2]  # a real model: related texts are closer
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 10
    assert floats.model == "wordllama-l2"
    raw = httpx2.post(
        f"{served.url}/v1/embeddings",
        headers=OPENAI_HEADERS,
        json={"model": "wordllama-l2", "input": "Cats", "encoding_format": "base64"},
    ).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, a[2], atol=1e-6)


def test_wordllama_dimensions_shorten_and_renormalise(client: openai.OpenAI) -> None:
    full = vectors(client.embeddings.create(model="wordllama-l2", input="a short text"))
    short = vectors(
        client.embeddings.create(model="wordllama-l2", input="a short text", dimensions=64)
    )
    assert short.shape == (1, 64)
    assert np.allclose(short[0], full[0, :64] / np.linalg.norm(full[0, :64]), atol=1e-5)
    with pytest.raises(openai.BadRequestError, match="at most 256"):
        client.embeddings.create(model="wordllama-l2", input="x", dimensions=300)


def test_e5_embeds_the_prefix_the_caller_gives(client: openai.OpenAI) -> None:
    text = "how to sort a list in place"
    q = vectors(client.embeddings.create(model="multilingual-e5-small", input=f"query: {text}"))
    p = vectors(client.embeddings.create(model="multilingual-e5-small", input=f"passage: {text}"))
    assert q.shape == (1, 384)
    assert 0.8 < float(q[0] @ p[0]) < 0.9999  # the prefix is part of what is embedded
    one = client.embeddings.create(model="multilingual-e5-small", input=[f"query: {text}"])
    assert np.allclose(vectors(one), q, atol=1e-6)
    # one request mixing both prefixes gives the same rows as two requests
    mixed = vectors(
        client.embeddings.create(
            model="multilingual-e5-small", input=[f"passage: {text}", f"query: {text}"]
        )
    )
    assert np.allclose(mixed, np.vstack([p, q]), atol=1e-5)
    assert one.usage.prompt_tokens > len(text.split())


def test_e5_refusals_say_why(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="must start with 'query: ' or 'passage: '"):
        client.embeddings.create(model="multilingual-e5-small", input="no prefix")
    with pytest.raises(openai.BadRequestError, match="does not support specifying dimensions"):
        client.embeddings.create(model="multilingual-e5-small", input="query: x", dimensions=128)
    ok = client.embeddings.create(model="multilingual-e5-small", input="query: x", dimensions=384)
    assert len(ok.data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError, match="takes text, not token ids"):
        client.embeddings.create(model="multilingual-e5-small-enpt", input=[[1, 2, 3]])


def test_seeded_models_are_unchanged(client: openai.OpenAI) -> None:
    first = client.embeddings.create(model="text-embedding-3-small", input="alpha", dimensions=8)
    again = client.embeddings.create(model="text-embedding-3-small", input="alpha", dimensions=8)
    assert first.data[0].embedding == again.data[0].embedding
    assert len(first.data[0].embedding) == 8


def test_split_prefix() -> None:
    assert split_e5_prefix("query: a") == (True, "a")
    assert split_e5_prefix("passage: query: a") == (False, "query: a")
    assert E5Model(name="x", variant="original").dimensions == 384
