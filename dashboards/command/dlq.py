"""`shadowjudge dlq list` and `shadowjudge dlq replay`: what is in the dead-letter topic, and
sending it back once the cause is fixed.

`list` reads the whole DLQ without a group (the workers are not disturbed) and summarises it
by kind, source topic and reason, with ages. `replay` republishes dead letters to the topic
they came from, with their original key and bytes and a `replayed_from` header, through a
consumer group of its own (`shadowjudge-dlq-replay`): a letter is committed past only after
the bus acknowledged its copy, so an interrupted replay goes on where it stopped and a
finished one replays nothing twice. The judge's writes are idempotent, so a letter replayed
twice (another group, `--group`) never counts twice. Letters cut to fit the message limit are
skipped unless `--include-truncated`: their bytes are not the original's and would only come
back as poison.

Both need a Kafka bus: with `bus: memory://` the DLQ lives inside the `shadowjudge run`
process.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mirror.bus.base import Message, TopicPartition
from mirror.bus.dlq import DeadLetter, parse_dead_letter
from mirror.errors import BusError
from mirror.events import utc_now

if TYPE_CHECKING:  # aiokafka and tqdm load when a dlq command runs, not for every command
    from dashboards.settings import Settings

REPLAY_GROUP = "shadowjudge-dlq-replay"
REPLAY_BATCH = 500
REASON_CHARS = 80
MEMORY_BUS = (
    "shadowjudge: the embedded run keeps its DLQ inside the `shadowjudge run` process; dlq "
    "commands need a Kafka bus (bus: kafka://host:port)"
)


def add_parser(commands: Any) -> None:
    dlq = commands.add_parser("dlq", help="the dead-letter topic: list it, replay it")
    actions = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = actions.add_parser("list", help="summary by kind, source and reason, with ages")
    replay = actions.add_parser(
        "replay",
        help="send dead letters back to their source topic, once each for the group",
        description=(
            "Republish dead letters to the topic they came from (original key and bytes, plus "
            "a `replayed_from` header), then commit past them for the replay group. Letters "
            "that do not match the filters, were cut to fit (unless --include-truncated) or "
            "have no known source are skipped, counted, and committed past too: a later "
            "replay of the same group does not look at them again (use another --group). "
            "Writes downstream are idempotent: a letter replayed twice never counts twice. "
            "Run one replay of a group at a time."
        ),
    )
    for sub in (listing, replay):
        sub.add_argument("--kind", help="only letters of this kind (poison, store, ...)")
        sub.add_argument("--source", help="only letters from this topic")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    replay.add_argument(
        "--reason-contains", default=None, help="only letters whose reason has this"
    )
    replay.add_argument(
        "--dry-run",
        action="store_true",
        help="count what would be replayed; send and commit nothing",
    )
    replay.add_argument("--include-truncated", action="store_true")
    replay.add_argument("--group", default=REPLAY_GROUP, help=f"default {REPLAY_GROUP}")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.bus.is_memory:
        print(MEMORY_BUS, file=sys.stderr)  # noqa: T201
        return 2
    try:
        if args.dlq_command == "list":
            return await list_letters(settings, args)
        return await replay_letters(settings, args)
    except BusError as exc:
        print(f"shadowjudge: {exc}", file=sys.stderr)  # noqa: T201
        return 1


@dataclass
class Group:
    count: int = 0
    truncated: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    sources: Counter[str] = field(default_factory=Counter)

    def add(self, letter: DeadLetter) -> None:
        self.count += 1
        self.truncated += letter.truncated
        if letter.at is not None:
            self.oldest = min(self.oldest or letter.at, letter.at)
            self.newest = max(self.newest or letter.at, letter.at)


def _matches(letter: DeadLetter, args: argparse.Namespace) -> bool:
    if args.kind and letter.kind != args.kind:
        return False
    return not (args.source and letter.source_topic != args.source)


def _reason(letter: DeadLetter) -> str:
    """The reason's first line, shortened, so that letters of one cause group together."""
    first = letter.reason.splitlines()[0] if letter.reason else "(no reason)"
    return first[:REASON_CHARS]


async def list_letters(settings: Settings, args: argparse.Namespace) -> int:
    from mirror.bus.scan import TopicScan

    topic = settings.bus.topics.dlq
    groups: dict[tuple[str, str, str], Group] = defaultdict(Group)
    async with TopicScan(settings.bus.bootstrap_servers, topic) as scan:
        async for record in scan.records():
            letter = parse_dead_letter(record)
            if _matches(letter, args):
                groups[(letter.kind, letter.source_topic or "?", _reason(letter))].add(letter)
    now = utc_now()
    rows = [
        {
            "kind": kind,
            "source": source,
            "reason": reason,
            "count": g.count,
            "truncated": g.truncated,
            "oldest": g.oldest.isoformat() if g.oldest else None,
            "newest": g.newest.isoformat() if g.newest else None,
            "oldest_age_s": round((now - g.oldest).total_seconds()) if g.oldest else None,
        }
        for (kind, source, reason), g in sorted(groups.items(), key=lambda kv: -kv[1].count)
    ]
    total = sum(g.count for g in groups.values())
    if args.json:
        print(json.dumps({"topic": topic, "total": total, "groups": rows}, indent=2))  # noqa: T201
        return 0
    if not rows:
        filtered = " for these filters" if args.kind or args.source else ""
        print(f"the DLQ ({topic}) is empty{filtered}")  # noqa: T201
        return 0
    header = f"{'count':>7}  {'trunc':>5}  {'oldest age':>10}  {'kind':<9} {'source':<24} reason"
    print(header)  # noqa: T201
    for row in rows:
        age = _age(row["oldest_age_s"])
        print(  # noqa: T201
            f"{row['count']:>7}  {row['truncated']:>5}  {age:>10}  {row['kind']:<9} "
            f"{row['source']:<24} {row['reason']}"
        )
    print(f"{total:>7}  total in {topic}")  # noqa: T201
    return 0


def _age(seconds: Any) -> str:
    if seconds is None:
        return "?"
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds}s"


async def replay_letters(settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mirror.bus.kafka import KafkaBus
    from mirror.bus.retry import deliver
    from mirror.bus.scan import TopicScan

    topic = settings.bus.topics.dlq
    skipped: Counter[str] = Counter()
    replayed = 0
    bus = KafkaBus(settings.bus, client_id="shadowjudge-dlq")
    if not args.dry_run:
        await bus.start()
    try:
        async with TopicScan(settings.bus.bootstrap_servers, topic, group=args.group) as scan:
            progress = tqdm(desc="replaying", unit="letter", file=sys.stderr, disable=None)
            pending: list[Message] = []
            done: dict[TopicPartition, int] = {}

            async def flush() -> None:
                if pending and not args.dry_run:
                    await deliver(bus, pending)
                if not args.dry_run:
                    await scan.commit(done)
                pending.clear()

            async for record in scan.records():
                if progress.total is None and scan.total is not None:
                    progress.total = scan.total
                progress.update()
                letter = parse_dead_letter(record)
                done[record.tp] = record.offset + 1
                why = _skip(letter, args)
                if why:
                    skipped[why] += 1
                else:
                    replayed += 1
                    assert letter.source_topic is not None
                    pending.append(
                        Message(
                            letter.source_topic,
                            letter.value,
                            letter.key,
                            (
                                (
                                    "replayed_from",
                                    f"{topic}:{record.partition}:{record.offset}".encode(),
                                ),
                            ),
                        )
                    )
                if len(pending) >= REPLAY_BATCH:
                    await flush()
            await flush()
            progress.close()
    finally:
        if not args.dry_run:
            await bus.stop()
    verb = "would replay" if args.dry_run else "replayed"
    print(  # noqa: T201
        f"{verb} {replayed}, skipped {sum(skipped.values())} (filtered {skipped['filtered']}, "
        f"truncated {skipped['truncated']}, no source {skipped['no source']})"
    )
    return 0


def _skip(letter: DeadLetter, args: argparse.Namespace) -> str:
    if not _matches(letter, args) or (
        args.reason_contains and args.reason_contains not in letter.reason
    ):
        return "filtered"
    if letter.truncated and not args.include_truncated:
        return "truncated"
    if letter.source_topic is None:
        return "no source"
    return ""
