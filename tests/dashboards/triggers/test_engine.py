"""The trigger engine over a real store, its audit rows, and its alerts to a loopback server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest

from dashboards.analysis.window import parse_window
from dashboards.triggers.alerts import Sink
from dashboards.triggers.config import RuleSettings, TriggerSettings
from dashboards.triggers.engine import DECISION_COLUMNS, Evaluation, Evaluator, overall
from dashboards.triggers.rules import Decision, Finding
from judge.comparison import RefusalFinding, Verdict
from judge.store.store import Store
from simulation.providers import serve
from tests.dashboards.generate import MIGRATION, Generated, generate
from tests.webhook import Receiver

NOW = datetime.now(UTC)


def rule(**fields: Any) -> RuleSettings:
    return RuleSettings.model_validate({"name": "r", **fields})


@pytest.fixture(scope="module")
def data() -> Generated:
    found = generate(3000, seed=21)
    # the candidate refuses 5 points more often than the primary; equivalence stays ~70%
    comparisons = []
    for i, c in enumerate(found.comparisons):
        candidate = i % 20 == 0 or c.refusal_primary
        finding = {
            (False, False): RefusalFinding.NONE,
            (True, False): RefusalFinding.PRIMARY_ONLY,
            (False, True): RefusalFinding.CANDIDATE_ONLY,
            (True, True): RefusalFinding.BOTH,
        }[(c.refusal_primary, candidate)]
        comparisons.append(c._replace(refusal_candidate=candidate, refusal_finding=finding))
    return Generated(found.pairs, comparisons)


def test_rules_decide_and_every_evaluation_is_audited(store: Store, data: Generated) -> None:
    settings = TriggerSettings(
        rules=(
            rule(name="refusals-up", metric="refusal_difference", margin=0.005, window="7d"),
            rule(name="equivalence-low", metric="equivalence_rate", threshold=0.9, window="7d"),
            rule(name="equivalence-ok", metric="equivalence_rate", threshold=0.5, window="7d"),
            rule(name="slow-tail", metric="latency_ratio", margin=0.3, window="7d"),
            rule(name="too-few", metric="worse_rate", threshold=0.5, window="7d", min_pairs=10**6),
            rule(
                name="tenants",
                metric="refusal_difference",
                margin=0.005,
                window="7d",
                segments=["tenant"],
            ),
        )
    )
    evaluator = Evaluator(settings, lambda: store, config_hash="abc123")
    found = evaluator.evaluate()
    by_rule = {(e.rule.name, e.segment): e.finding for e in found if e.arm == "sonnet"}
    assert by_rule[("refusals-up", "*")].decision is Decision.FIRE
    assert by_rule[("equivalence-low", "*")].decision is Decision.FIRE
    assert by_rule[("equivalence-ok", "*")].decision is Decision.CLEAR
    assert by_rule[("slow-tail", "*")].decision is Decision.CLEAR  # the candidate is faster
    assert by_rule[("too-few", "*")].decision is Decision.HOLD
    assert {s for r, s in by_rule if r == "tenants"} == {
        "tenant=acme",
        "tenant=globex",
        "tenant=initech",
    }
    assert all(e.arm != "noise" for e in found)  # the noise arm is a baseline, never judged
    sonnet = [c for c in data.comparisons if c.arm == "sonnet"]
    judged = [c for c in sonnet if c.verdict not in (Verdict.NOT_JUDGED, Verdict.ERROR)]
    eq = by_rule[("equivalence-low", "*")]
    assert eq.n == len(judged)
    assert eq.estimate == pytest.approx(
        sum(c.verdict is Verdict.EQUIVALENT for c in judged) / len(judged)
    )
    assert eq.lower < eq.estimate < eq.upper < 0.9
    audit = store.select(
        "SELECT rule, segment, toString(decision) AS decision, n, config_hash"
        " FROM trigger_decisions WHERE arm = 'sonnet' ORDER BY rule, segment"
    )
    assert len(audit) == len([e for e in found if e.arm == "sonnet"])
    assert {
        "rule": "too-few",
        "segment": "*",
        "decision": "hold",
        "n": len(judged),
        "config_hash": "abc123",
    } in audit
    gauges = generate_latest(evaluator.registry).decode()
    assert (
        'shadowjudge_trigger_decision{arm="sonnet",migration="support",rule="refusals-up",'
        'segment="*"} 2.0' in gauges
    )
    assert overall(found) is Decision.FIRE
    assert overall([]) is Decision.HOLD  # no evidence is not a pass


def test_the_states_show_on_the_analysis(store: Store) -> None:
    from dashboards.analysis.service import Analyst

    settings = TriggerSettings(
        rules=(rule(name="equivalence-low", metric="equivalence_rate", threshold=0.9, window="7d"),)
    )
    Evaluator(settings, lambda: store).evaluate()
    (analysis,) = Analyst(store).analyse(parse_window("7d"))
    sonnet = next(a for a in analysis.arms if a.arm == "sonnet")
    assert [(t.rule, t.decision, t.threshold) for t in sonnet.triggers] == [
        ("equivalence-low", "fire", 0.9)
    ]


def _evaluation(decision: Decision, estimate: float = 0.7) -> Evaluation:
    finding = Finding(decision, 2000, estimate, estimate - 0.02, estimate + 0.02, 0.9)
    the_rule = rule(
        name="equivalence-low",
        metric="equivalence_rate",
        threshold=0.9,
        window="24h",
        **{"for": "10m", "keep_firing_for": "5m"},
    )
    return Evaluation(the_rule, MIGRATION, "sonnet", "*", parse_window("24h"), finding)


def test_alertmanager_gets_firing_then_resolved_and_flapping_sends_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = Receiver()
    with serve(receiver) as served:
        monkeypatch.setenv("SJ_T_AM", f"{served.url}/api/v2/alerts")
        sink = Sink.from_settings(
            TriggerSettings.model_validate(
                {"sinks": [{"name": "am", "kind": "alertmanager", "url_env": "SJ_T_AM"}]}
            ).sinks[0],
            "triggers.sinks[0]",
        )
        evaluator = Evaluator(
            TriggerSettings(),
            lambda: None,
            sinks=[sink],
            base_url="https://sj.example",  # type: ignore[arg-type, return-value]
        )
        t0 = NOW

        def at(minutes: float, decision: Decision) -> None:
            evaluator.advance([_evaluation(decision)], t0 + timedelta(minutes=minutes), None)  # type: ignore[arg-type]

        # flapping inside `for` (10 minutes): pending, cleared, pending again — nothing sent
        at(0, Decision.FIRE)
        at(4, Decision.HOLD)
        at(6, Decision.FIRE)
        at(12, Decision.FIRE)
        assert receiver.payloads == []
        at(16, Decision.FIRE)  # 10 minutes since 6: firing
        assert len(receiver.payloads) == 1
        firing = receiver.payloads[0]
        assert firing["version"] == "4" and firing["status"] == "firing"
        (alert,) = firing["alerts"]
        assert alert["labels"]["alertname"] == "equivalence-low"
        assert alert["labels"]["migration"] == MIGRATION and alert["labels"]["arm"] == "sonnet"
        assert alert["annotations"]["estimate"] == "0.7" and alert["annotations"]["limit"] == "0.9"
        assert alert["generatorURL"] == f"https://sj.example/migrations/{MIGRATION}?window=24h"
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"
        at(20, Decision.FIRE)  # still firing: no repeat before repeat_interval (4 h)
        at(22, Decision.HOLD)  # keep_firing_for 5 minutes: not resolved yet
        assert len(receiver.payloads) == 1
        at(28, Decision.CLEAR)
        assert len(receiver.payloads) == 2
        resolved = receiver.payloads[1]
        assert resolved["status"] == "resolved"
        assert resolved["alerts"][0]["startsAt"] == alert["startsAt"]
        assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
        at(30 + 4 * 60, Decision.CLEAR)
        assert len(receiver.payloads) == 2


def test_repeats_are_rate_limited_and_slack_and_json_sinks(monkeypatch: pytest.MonkeyPatch) -> None:
    slack, plain = Receiver(), Receiver()
    with serve(slack) as s, serve(plain) as p:
        monkeypatch.setenv("SJ_T_SLACK", f"{s.url}/hook")
        monkeypatch.setenv("SJ_T_JSON", f"{p.url}/in")
        sinks = TriggerSettings.model_validate(
            {
                "sinks": [
                    {
                        "name": "team",
                        "kind": "slack",
                        "url_env": "SJ_T_SLACK",
                        "repeat_interval": "1h",
                    },
                    {"name": "bus", "kind": "json", "url_env": "SJ_T_JSON"},
                ]
            }
        ).sinks
        evaluator = Evaluator(
            TriggerSettings(),
            lambda: None,  # type: ignore[arg-type, return-value]
            sinks=[Sink.from_settings(x, "k") for x in sinks],
        )
        for minutes in range(0, 181, 10):
            evaluator.advance(
                [_evaluation(Decision.FIRE)],
                NOW + timedelta(minutes=minutes),
                None,  # type: ignore[arg-type]
            )
    # firing after 10 minutes, then again every hour on Slack, every 4 hours on the JSON sink
    assert len(slack.payloads) == 3
    assert slack.payloads[0]["text"].startswith(
        ":rotating_light: <http://127.0.0.1:8701/migrations/"
    )
    assert len(plain.payloads) == 1
    assert plain.payloads[0]["alerts"][0]["decision"] == "fire"


def test_a_missing_sink_variable_names_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from mirror.errors import ConfigError

    monkeypatch.delenv("SJ_T_NONE", raising=False)
    settings = TriggerSettings.model_validate(
        {"sinks": [{"name": "am", "kind": "alertmanager", "url_env": "SJ_T_NONE"}]}
    )
    with pytest.raises(ConfigError, match=r"triggers.sinks\[0\].url_env: environment variable"):
        Sink.from_settings(settings.sinks[0], "triggers.sinks[0]")


def test_rollback_sets_the_weight_to_zero(store: Store) -> None:
    settings = TriggerSettings(
        rules=(
            rule(
                name="refusals-up",
                metric="refusal_difference",
                margin=0.005,
                window="7d",
                rollback=True,
            ),
        )
    )
    Evaluator(settings, lambda: store).evaluate()
    rows = store.select("SELECT migration, arm, weight, actor FROM rollout")
    assert {
        "migration": MIGRATION,
        "arm": "sonnet",
        "weight": 0.0,
        "actor": "trigger:refusals-up",
    } in rows


def test_every_metric_and_baseline_decides(store: Store) -> None:
    rules = (
        rule(name="ttft", metric="ttft_ratio", margin=0.3, window="7d"),
        rule(name="ttft-noise", metric="ttft_ratio", margin=0.3, window="7d", baseline="noise"),
        rule(name="cost", metric="cost_ratio", margin=0.1, window="7d"),
        rule(name="errors", metric="error_rate", margin=0.01, window="7d"),
        rule(name="errors-level", metric="error_rate", threshold=0.5, window="7d"),
        rule(name="worse-noise", metric="worse_rate", margin=0.02, window="7d", baseline="noise"),
        rule(name="drift", metric="format_drift_rate", threshold=0.5, window="7d"),
        rule(
            name="eq-noise", metric="equivalence_rate", margin=0.05, window="7d", baseline="noise"
        ),
    )
    found = {
        e.rule.name: e.finding
        for e in Evaluator(TriggerSettings(rules=rules), lambda: store).evaluate()
    }
    assert set(found) == {r.name for r in rules}
    # the generated candidate answers its first token faster and costs 1.5x per output token
    assert found["ttft"].decision is Decision.CLEAR and found["ttft"].estimate < 1
    assert found["cost"].decision is Decision.FIRE and found["cost"].estimate > 1.1
    # the candidate's only errors are skipped calls: our setup, not the candidate failing
    assert found["errors"].decision is Decision.CLEAR and found["errors"].estimate == 0
    assert found["errors-level"].decision is Decision.CLEAR
    assert found["drift"].decision is Decision.CLEAR
    # the noise arm agrees with the primary far more than the candidate does
    assert found["eq-noise"].decision is Decision.FIRE
    assert found["eq-noise"].estimate < -0.05


def test_a_new_process_takes_up_the_alert_state_its_predecessor_left(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted evaluator reads its predecessor's audit rows: a target firing for longer
    than `for` is firing already (not sent again, not rolled back again), a fire run shorter
    than `for` stays pending from where it began, and a target whose latest decision is not
    fire starts afresh."""
    decisions = [
        ("firing", 60, "clear"),
        *(("firing", m, "fire") for m in (40, 30, 20, 10, 1)),
        ("pending", 9, "clear"),
        *(("pending", m, "fire") for m in (3, 1)),
        ("stopped", 30, "fire"),
        ("stopped", 20, "fire"),
        ("stopped", 2, "clear"),
    ]
    window = parse_window("24h")
    store.write(
        "trigger_decisions",
        DECISION_COLUMNS,
        [
            (NOW - timedelta(minutes=m), MIGRATION, arm, "equivalence-low", "*", window.since)
            + (window.until, 2000, 0.7, 0.68, 0.72, 0.9, decision, "h")
            for arm, m, decision in decisions
        ],
    )
    receiver = Receiver()
    with serve(receiver) as served:
        monkeypatch.setenv("SJ_T_RESTORE", f"{served.url}/in")
        settings = TriggerSettings.model_validate(
            {"sinks": [{"name": "bus", "kind": "json", "url_env": "SJ_T_RESTORE"}]}
        )
        the_rule = _evaluation(Decision.FIRE).rule.model_copy(update={"rollback": True})
        evaluator = Evaluator(
            settings.model_copy(update={"rules": (the_rule,)}),
            lambda: store,
            sinks=[Sink.from_settings(settings.sinks[0], "k")],
        )
        assert evaluator.restore(store, NOW) == 2

        def fire(arm: str, minutes: float) -> None:
            finding = _evaluation(Decision.FIRE).finding
            e = Evaluation(the_rule, MIGRATION, arm, "*", window, finding)
            evaluator.advance([e], NOW + timedelta(minutes=minutes), store)

        for arm in ("firing", "pending", "stopped"):
            fire(arm, 1)
        assert receiver.payloads == []  # firing was sent before; the others are pending
        fire("pending", 8)  # 11 minutes since its run began: firing now
        assert [p["alerts"][0]["arm"] for p in receiver.payloads] == ["pending"]
        fire("stopped", 8)  # 7 minutes since it fired again: still pending
        assert len(receiver.payloads) == 1
    gauge = generate_latest(evaluator.registry).decode()
    assert 'shadowjudge_trigger_firing{arm="firing"' in gauge
    rolled_back = store.select(
        "SELECT arm FROM rollout WHERE actor = 'trigger:equivalence-low' ORDER BY arm"
    )
    assert [r["arm"] for r in rolled_back] == ["pending"]  # not "firing" a second time
