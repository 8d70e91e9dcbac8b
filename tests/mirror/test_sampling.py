"""Hash sampling: the share is right, the decision is stable everywhere, sticky keys stick."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from mirror.events import Api, ArmResult, CapturedCall
from mirror.sampling import arm_salt, hash_point, sampling_key, selected

ROOT = Path(__file__).resolve().parents[2]


def _call(call_id: str | None = None, **segment: str) -> CapturedCall:
    fields = {"call_id": call_id} if call_id else {}
    return CapturedCall(
        api=Api.OPENAI_CHAT,
        segment=segment,
        primary=ArmResult(provider="openai", latency_ms=1.0),
        **fields,
    )


def _random_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(count)]


def test_rate_lands_within_two_points() -> None:
    ids = _random_ids(10_000, seed=7)
    share = sum(selected(i, salt="gpt4o-to-sonnet", rate=0.2) for i in ids) / len(ids)
    assert 0.18 <= share <= 0.22


def test_rates_zero_and_one_are_exact() -> None:
    ids = _random_ids(2_000, seed=1)
    assert not any(selected(i, salt="m", rate=0.0) for i in ids)
    assert all(selected(i, salt="m", rate=1.0) for i in ids)


def test_bad_rates_are_refused() -> None:
    for rate in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            selected("k", salt="m", rate=rate)


def test_raising_the_rate_only_adds_calls() -> None:
    ids = _random_ids(2_000, seed=2)
    low = {i for i in ids if selected(i, salt="m", rate=0.1)}
    high = {i for i in ids if selected(i, salt="m", rate=0.3)}
    assert low < high


def test_salts_sample_independently() -> None:
    ids = _random_ids(10_000, seed=3)
    a = {i for i in ids if selected(i, salt="migration-a", rate=0.5)}
    b = {i for i in ids if selected(i, salt="migration-b", rate=0.5)}
    noise = {i for i in ids if selected(i, salt=arm_salt("migration-a", "noise"), rate=0.5)}
    # Independent halves overlap on about a quarter of the calls, not on half (or all) of them.
    assert 0.23 <= len(a & b) / len(ids) <= 0.27
    assert 0.23 <= len(a & noise) / len(ids) <= 0.27


def test_hash_point_is_a_fixed_function() -> None:
    # Pinned values: a change to the hash would silently resample every running migration.
    assert hash_point("call-1", salt="m") == 0.8641023405067209
    call_id = "0190f3a2-7b1c-7d4e-9f00-123456789abc"
    assert hash_point(call_id, salt="gpt4o-to-sonnet") == 0.9437052610683427
    assert 0.0 <= hash_point("", salt="") < 1.0


def test_same_decisions_in_another_process() -> None:
    ids = _random_ids(1_000, seed=4)
    here = "".join("1" if selected(i, salt="m1", rate=0.37) else "0" for i in ids)
    script = (
        "import sys\n"
        "from mirror.sampling import selected\n"
        "ids = sys.stdin.read().split()\n"
        "print(''.join('1' if selected(i, salt='m1', rate=0.37) else '0' for i in ids))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different str hash() than ours
    done = subprocess.run(
        [sys.executable, "-c", script],
        input="\n".join(ids),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == here
    assert 250 < here.count("1") < 490


def test_default_key_is_the_call_id() -> None:
    call = _call(user="u1")
    assert sampling_key(call, None) == call.call_id


def test_sticky_key_keeps_a_users_calls_together() -> None:
    users = _random_ids(500, seed=5)
    for user in users:
        decisions = {
            selected(sampling_key(_call(user=user), "segment.user"), salt="m", rate=0.3)
            for _ in range(4)
        }
        assert len(decisions) == 1  # all of one user's calls in, or all out
    share = sum(
        selected(sampling_key(_call(user=u), "segment.user"), salt="m", rate=0.3) for u in users
    ) / len(users)
    assert 0.22 <= share <= 0.38


def test_sticky_key_falls_back_to_the_call_id() -> None:
    missing = _call(tenant="acme")
    empty = _call(user="")
    assert sampling_key(missing, "segment.user") == missing.call_id
    assert sampling_key(empty, "segment.user") == empty.call_id
    labelled = _call(user="u-42")
    assert sampling_key(labelled, "segment.user") == "segment.user=u-42"
    other = _call(user="u-43")
    assert sampling_key(labelled, "segment.user") != sampling_key(other, "segment.user")


def test_bad_sticky_is_refused() -> None:
    for sticky in ("user", "segment.", "metadata.user"):
        with pytest.raises(ValueError, match="segment"):
            sampling_key(_call(), sticky)
