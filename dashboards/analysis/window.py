"""The time window a page or an analysis covers: `1h`, `24h`, `7d`, `30d`, `all`, or one UTC day.

Windows end at the next whole hour, so the hourly aggregates cover them exactly: a figure for
`24h` is read from 24 whole hour buckets plus the current, partial one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from mirror.errors import ConfigError

NAMED = ("1h", "24h", "7d", "30d", "all")
DEFAULT = "7d"
#: The first moment `all` covers: the store's data start later than this.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_SPAN = re.compile(r"^(\d{1,4})([hd])$")


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime
    until: datetime
    label: str

    @property
    def hours(self) -> float:
        return (self.until - self.since).total_seconds() / 3600

    @property
    def bucket_hours(self) -> int:
        """Bucket size of a time series over this window: about 24 to 60 points."""
        hours = self.hours
        for size in (1, 3, 6, 12, 24):
            if hours / size <= 60:
                return size
        return 24 * max(1, round(hours / 24 / 60))

    def params(self) -> dict[str, datetime]:
        return {"since": self.since, "until": self.until}


def next_hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def parse_window(text: str | None, *, now: datetime | None = None) -> Window:
    """`1h`…`30d` (any `<n>h` or `<n>d`), `all`, or a day `YYYY-MM-DD`; a ConfigError names
    what was wrong."""
    now = now or datetime.now(UTC)
    text = (text or DEFAULT).strip()
    end = next_hour(now)
    if text == "all":
        return Window(EPOCH, end, "all")
    span = _SPAN.match(text)
    if span:
        amount = int(span[1])
        if amount == 0:
            raise ConfigError(f"window {text!r}: must be longer than zero")
        delta = timedelta(hours=amount) if span[2] == "h" else timedelta(days=amount)
        return Window(end - delta, end, text)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"window {text!r}: expected one of {', '.join(NAMED)}, <n>h, <n>d or a YYYY-MM-DD day"
        ) from None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Window(start, start + timedelta(days=1), day.isoformat())


def yesterday(now: datetime | None = None) -> str:
    return ((now or datetime.now(UTC)) - timedelta(days=1)).date().isoformat()
