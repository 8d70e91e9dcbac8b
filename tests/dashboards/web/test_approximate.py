"""Approximately translated pairs on the migration page, its JSON twin and the pair page:
counted, shown, and left out (`?approximate=exclude`) or read alone (`only`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from dashboards.analysis.corrections import CALIBRATION, labelled_pairs
from dashboards.analysis.window import parse_window
from dashboards.review.queue import REVIEW_COLUMNS, review_row
from dashboards.web.app import WebConfig, create_app
from judge.comparison import Comparison, Verdict
from judge.store.schema import APPROXIMATE_SEGMENT, FAITHFUL_SEGMENT, crossed_segment
from judge.store.store import Store
from tests.dashboards.generate import MIGRATION, Generated, generate

NOTES = ("json_object as forced tool use", "top_p not sent")


@pytest.fixture(scope="module")
def data() -> Generated:
    found = generate(400, seed=9)
    found.comparisons[:] = [
        c._replace(candidate_approximations=NOTES[: 1 + i % 2])
        if c.arm_kind == "candidate" and i % 3 == 0
        else c
        for i, c in enumerate(found.comparisons)
    ]
    return found


def web(store: Store) -> TestClient:
    return TestClient(create_app(lambda: store, WebConfig(token=None)), follow_redirects=False)


def arm_of(analysis: dict, name: str) -> dict:
    return next(a for a in analysis["arms"] if a["arm"] == name)


def expected(rows: list[Comparison], arm: str) -> tuple[int, int]:
    mine = [c for c in rows if c.arm == arm]
    return len(mine), sum(c.verdict is Verdict.EQUIVALENT for c in mine)


def test_the_analysis_counts_and_filters_approximate_pairs(store: Store, data: Generated) -> None:
    client = web(store)
    url = f"/api/v1/migrations/{MIGRATION}/analysis?window=7d"
    every = client.get(url).json()
    arm = next(a["arm"] for a in every["arms"] if a["arm_kind"] == "candidate")
    approximate = [c for c in data.comparisons if c.candidate_approximations]
    faithful = [c for c in data.comparisons if not c.candidate_approximations]
    mine = [c for c in approximate if c.arm == arm]
    assert mine, "the generated data has approximate pairs on the arm"
    shown = arm_of(every, arm)
    assert shown["approximate_pairs"] == len(mine)
    assert shown["approximations"] == {
        NOTES[0]: len(mine),
        NOTES[1]: sum(len(c.candidate_approximations) == 2 for c in mine),
    }
    for value, rows in (("exclude", faithful), ("only", approximate)):
        found = arm_of(client.get(f"{url}&approximate={value}").json(), arm)
        pairs, equivalent = expected(rows, arm)
        assert (found["pairs"], found["verdicts"]["equivalent"]) == (pairs, equivalent)
    excluded = arm_of(client.get(f"{url}&approximate=exclude").json(), arm)
    assert excluded["approximate_pairs"] == 0
    # The noise arm is never translated: leaving approximate pairs out keeps all of it.
    noise = next(a["arm"] for a in every["arms"] if a["arm_kind"] == "noise")
    noise_all = arm_of(every, noise)["pairs"]
    assert arm_of(client.get(f"{url}&approximate=exclude").json(), noise)["pairs"] == noise_all


def test_a_segment_and_the_filter_combine(store: Store, data: Generated) -> None:
    """`?segment=tenant=acme&approximate=exclude` reads the segment's faithful pairs (the
    stats' crossed segment), on the page and its JSON twin; each arm's counts are those of the
    raw rows in both the segment and the filter."""
    client = web(store)
    base = f"/api/v1/migrations/{MIGRATION}/analysis?window=7d&segment=tenant=acme"
    acme = [c for c in data.comparisons if c.segment.get("tenant") == "acme"]
    arms = sorted({c.arm for c in acme})
    for value, keep in (("exclude", False), ("only", True)):
        response = client.get(f"{base}&approximate={value}")
        assert response.status_code == 200, response.text
        found = response.json()
        rows = [c for c in acme if bool(c.candidate_approximations) is keep]
        assert (
            found["segment"] == f"translation={'approximate' if keep else 'faithful'},tenant=acme"
        )
        for arm in arms:
            pairs, equivalent = expected(rows, arm)
            if not pairs:
                assert arm not in [a["arm"] for a in found["arms"]]
                continue
            shown = arm_of(found, arm)
            assert (shown["pairs"], shown["verdicts"]["equivalent"]) == (pairs, equivalent)
            assert shown["approximate_pairs"] == (pairs if keep else 0)
        # the crossed segments are read when asked for, never listed as segments of their own
        assert all("," not in name for name in found["segments"])
        assert "tenant=acme" in found["segments"]
    # both halves add up to the segment
    whole = client.get(base).json()
    halves = [client.get(f"{base}&approximate={v}").json() for v in ("exclude", "only")]
    for arm in arms:
        split = sum(a["pairs"] for h in halves for a in h["arms"] if a["arm"] == arm)
        assert split == arm_of(whole, arm)["pairs"]


def test_the_page_keeps_both_choices(store: Store) -> None:
    client = web(store)
    url = f"/migrations/{MIGRATION}?window=7d&segment=tenant=acme&approximate=only"
    page = client.get(url)
    assert page.status_code == 200, page.text
    assert "<option selected>tenant=acme</option>" in page.text
    assert '<option value="only" selected>' in page.text
    assert "segment=tenant%3Dacme&amp;approximate=only" in page.text  # the JSON link
    # the translation segment chosen as a segment is the filter on all traffic
    plain = client.get(f"/migrations/{MIGRATION}?window=7d&segment=translation=faithful").text
    assert '<option value="exclude" selected>' in plain
    assert '<option value="*">all traffic</option>' in plain
    assert "<option selected>translation=faithful</option>" not in plain


def test_bad_or_contradicting_filters_are_refused(store: Store) -> None:
    client = web(store)
    base = f"/api/v1/migrations/{MIGRATION}/analysis?window=7d"
    assert client.get(f"{base}&approximate=some").status_code == 400
    assert client.get(f"{base}&segment=acme&approximate=exclude").status_code == 400
    contradiction = f"{base}&approximate=only&segment=translation=faithful"
    assert client.get(contradiction).status_code == 400
    crossed = f"/migrations/{MIGRATION}?window=7d&approximate=exclude"
    assert client.get(f"{crossed}&segment=translation=approximate,tenant=acme").status_code == 400
    # The segment the filter stands for is accepted as itself, alone or crossed.
    same = f"{base}&approximate=exclude&segment=translation=faithful"
    assert client.get(same).json()["segment"] == "translation=faithful"
    spelled = client.get(f"{base}&segment=translation=faithful,tenant=acme").json()
    assert spelled["segment"] == "translation=faithful,tenant=acme"


def test_the_pages_show_the_count_and_the_notes(store: Store, data: Generated) -> None:
    client = web(store)
    html = client.get(f"/migrations/{MIGRATION}?window=7d").text
    assert 'data-figure="approximate-pairs"' in html and NOTES[0] in html
    assert "approximate=exclude" in html
    only = client.get(f"/migrations/{MIGRATION}?window=7d&approximate=only").text
    assert '<option value="only" selected>' in only
    pair = next(c for c in data.comparisons if len(c.candidate_approximations) == 2)
    shown = client.get(f"/pairs/{MIGRATION}/{pair.arm}/{pair.call_id}").text
    assert f"{NOTES[0]}; {NOTES[1]}" in shown
    plain = next(c for c in data.comparisons if not c.candidate_approximations)
    assert (
        'data-figure="approximations"'
        not in client.get(f"/pairs/{MIGRATION}/{plain.arm}/{plain.call_id}").text
    )


def test_reviewers_labels_follow_the_segment_and_the_filter(store: Store, data: Generated) -> None:
    """The labels that correct a rate are those of the pairs the figures are read over: a
    `translation=` segment, alone or crossed with a label, selects by the candidate's
    translation, not by a call label of that name (there is none)."""
    labelled = [c for c in data.comparisons if c.arm_kind == "candidate"][:90]
    rows = [
        review_row(
            call_id=c.call_id,
            migration=MIGRATION,
            arm=c.arm,
            judge_version=c.judge_version,
            reviewer="ana",
            label="equivalent",
            queue_name=CALIBRATION,
            at=datetime.now(UTC),
        )
        for c in labelled
    ]
    store.write("reviews", REVIEW_COLUMNS, rows)
    window = parse_window("7d")
    cases = {
        "*": lambda c: True,
        "tenant=acme": lambda c: c.segment.get("tenant") == "acme",
        FAITHFUL_SEGMENT: lambda c: not c.candidate_approximations,
        APPROXIMATE_SEGMENT: lambda c: bool(c.candidate_approximations),
        crossed_segment("tenant=acme", APPROXIMATE_SEGMENT): lambda c: (
            bool(c.candidate_approximations) and c.segment.get("tenant") == "acme"
        ),
    }
    for segment, keep in cases.items():
        found = labelled_pairs(store, window, migration=MIGRATION, segment=segment)
        got = sum(len(v) for v in found.values())
        want = sum(keep(c) for c in labelled)
        assert want and got == want, segment


def test_the_report_command_takes_the_filter_with_a_segment(store: Store, data: Generated) -> None:
    """`shadowjudge report --segment tenant=acme --approximate exclude|only` shows the figures
    the page shows for the same choices (through the dashboards' API, as with a running `run`);
    a segment and a filter that select nothing together are a setting to fix, not a request."""
    import argparse
    import io
    import json

    from dashboards.command import report
    from dashboards.settings import Settings
    from mirror.errors import ConfigError
    from simulation.providers import serve

    client = web(store)
    app = create_app(lambda: store, WebConfig(token=None))
    with serve(app) as served:
        for value in ("exclude", "only"):
            args = argparse.Namespace(
                migration=MIGRATION,
                window="7d",
                segment="tenant=acme",
                approximate=value,
                judge_version=None,
                url=served.url,
                json=True,
            )
            out = io.StringIO()
            assert report.run(Settings(), args, out) == 0
            printed = json.loads(out.getvalue())
            page = client.get(
                f"/api/v1/migrations/{MIGRATION}/analysis?window=7d&segment=tenant=acme"
                f"&approximate={value}"
            ).json()
            assert (
                printed["segment"]
                == page["segment"]
                == crossed_segment(
                    "tenant=acme", FAITHFUL_SEGMENT if value == "exclude" else APPROXIMATE_SEGMENT
                )
            )
            assert [(a["arm"], a["pairs"]) for a in printed["arms"]] == [
                (a["arm"], a["pairs"]) for a in page["arms"]
            ]
        args.segment, args.approximate = FAITHFUL_SEGMENT, "only"
        with pytest.raises(ConfigError, match="--segment and --approximate: .* select no pair"):
            report.run(Settings(), args, io.StringIO())
