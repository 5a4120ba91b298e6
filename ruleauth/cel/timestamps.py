"""CEL timestamps and durations on plain values, for compiled closures (cel/closures.py).

Both are integer nanoseconds, as CEL's are (docs/cel.md "Timestamps and durations"): a
timestamp since 1970-01-01T00:00:00Z, within 0001-01-01T00:00:00Z..9999-12-31T23:59:59.999999999Z;
a duration within the 64-bit nanosecond range (about ±292 years). A value or a result outside
its range is an error (`ValueError`), never a wrapped or clamped value. Text is RFC 3339 for
timestamps and Go-style `1h2m3.5s` for durations; `string()` writes 0, 3, 6 or 9 fractional
digits, as protobuf's JSON form (and cel-cpp) does.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, cast

NANOS = 10**9
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
MIN_TIMESTAMP = -62135596800 * NANOS  # 0001-01-01T00:00:00Z
MAX_TIMESTAMP = 253402300799 * NANOS + NANOS - 1  # 9999-12-31T23:59:59.999999999Z
MIN_DURATION, MAX_DURATION = -(2**63), 2**63 - 1


class _Temporal:
    __slots__ = ("nanos",)

    def __init__(self, nanos: int):
        self.nanos = nanos

    # Ordered and equal only against their own type: the operators (cel/closures.py) refuse others.
    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self) and other.nanos == self.nanos

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.nanos))

    def __lt__(self, other: Any) -> bool:
        return self.nanos < _same(self, other).nanos

    def __le__(self, other: Any) -> bool:
        return self.nanos <= _same(self, other).nanos

    def __gt__(self, other: Any) -> bool:
        return self.nanos > _same(self, other).nanos

    def __ge__(self, other: Any) -> bool:
        return self.nanos >= _same(self, other).nanos

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.nanos,)


def _same(left: _Temporal, right: Any) -> _Temporal:
    if type(right) is not type(left):
        raise TypeError("no such overload")
    return right


class Timestamp(_Temporal):
    __slots__ = ()

    def __str__(self) -> str:
        return format_timestamp(self)

    def __repr__(self) -> str:
        return f"timestamp({format_timestamp(self)!r})"

    def datetime(self) -> datetime.datetime:
        """As a UTC datetime (microseconds: what the other engines' values hold)."""
        return _EPOCH + datetime.timedelta(microseconds=self.nanos // 1000)


class Duration(_Temporal):
    __slots__ = ()

    def __str__(self) -> str:
        return format_duration(self)

    def __repr__(self) -> str:
        return f"duration({format_duration(self)!r})"


TEMPORAL = (Timestamp, Duration)


def timestamp(nanos: int) -> Timestamp:
    if not MIN_TIMESTAMP <= nanos <= MAX_TIMESTAMP:
        raise ValueError("timestamp out of range")
    return Timestamp(nanos)


def duration(nanos: int) -> Duration:
    if not MIN_DURATION <= nanos <= MAX_DURATION:
        raise ValueError("duration out of range")
    return Duration(nanos)


def from_datetime(value: datetime.datetime) -> Timestamp:
    """A request's `now` (an aware datetime) as a timestamp."""
    delta = value - _EPOCH
    return timestamp((delta.days * 86400 + delta.seconds) * NANOS + delta.microseconds * 1000)


# ------------------------------------------------------------------ conversions


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)


def parse_timestamp(text: str) -> Timestamp:
    """RFC 3339 with an explicit offset; a bad or out-of-range text is a ValueError."""
    found = _RFC3339.match(text)
    if found is None:
        raise ValueError("invalid timestamp")
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    fraction = (found.group(7) or "").ljust(9, "0")
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError:
        raise ValueError("invalid timestamp") from None
    offset = 0
    if not found.group(8):
        hours, minutes = int(found.group(10)), int(found.group(11))
        if hours > 23 or minutes > 59:
            raise ValueError("invalid timestamp")
        offset = (hours * 60 + minutes) * 60 * (1 if found.group(9) == "+" else -1)
    delta = moment - _EPOCH
    seconds = delta.days * 86400 + delta.seconds - offset
    return timestamp(seconds * NANOS + int(fraction))


_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 10**6, "s": NANOS, "m": 60 * NANOS, "h": 3600 * NANOS}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> Duration:
    """Go's duration syntax (`-1h30m`, `1.5s`, `250ms`, `0`), computed exactly in integers."""
    sign, rest = 1, text
    if rest[:1] in "+-" and rest:
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:]
    if rest == "0":
        return Duration(0)
    if not rest:
        raise ValueError("invalid duration")
    total, position = 0, 0
    while position < len(rest):
        found = _DURATION_PART.match(rest, position)
        if found is None or not (found.group(1) or found.group(2)):
            raise ValueError("invalid duration")
        whole, fraction, unit = found.group(1) or "0", found.group(2) or "", _UNITS[found.group(3)]
        total += int(whole) * unit + (int(fraction) * unit // 10 ** len(fraction) if fraction else 0)
        position = found.end()
    return duration(sign * total)


def to_timestamp(value: Any) -> Timestamp:
    kind = type(value)
    if kind is Timestamp:
        return cast(Timestamp, value)
    if kind is str:
        return parse_timestamp(value)
    if kind is int:
        return timestamp(value * NANOS)
    raise TypeError("no such overload")


def to_duration(value: Any) -> Duration:
    kind = type(value)
    if kind is Duration:
        return cast(Duration, value)
    if kind is str:
        return parse_duration(value)
    raise TypeError("no such overload")


def seconds_of(value: Timestamp) -> int:
    """int(timestamp): whole seconds since the epoch, rounded down."""
    return value.nanos // NANOS


def _fraction(nanos: int) -> str:
    if nanos == 0:
        return ""
    if nanos % 10**6 == 0:
        return f".{nanos // 10**6:03d}"
    if nanos % 1000 == 0:
        return f".{nanos // 1000:06d}"
    return f".{nanos:09d}"


def format_timestamp(value: Timestamp) -> str:
    seconds, nanos = divmod(value.nanos, NANOS)
    moment = _EPOCH + datetime.timedelta(seconds=seconds)
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}{_fraction(nanos)}Z"


def format_duration(value: Duration) -> str:
    sign, nanos = ("-", -value.nanos) if value.nanos < 0 else ("", value.nanos)
    seconds, fraction = divmod(nanos, NANOS)
    return f"{sign}{seconds}{_fraction(fraction)}s"


# ------------------------------------------------------------------ arithmetic


def add(left: Any, right: Any) -> Any:
    kinds = (type(left), type(right))
    if kinds == (Timestamp, Duration):
        return timestamp(left.nanos + right.nanos)
    if kinds == (Duration, Timestamp):
        return timestamp(left.nanos + right.nanos)
    if kinds == (Duration, Duration):
        return duration(left.nanos + right.nanos)
    raise TypeError("no such overload")


def subtract(left: Any, right: Any) -> Any:
    kinds = (type(left), type(right))
    if kinds == (Timestamp, Duration):
        return timestamp(left.nanos - right.nanos)
    if kinds == (Timestamp, Timestamp):
        return duration(left.nanos - right.nanos)
    if kinds == (Duration, Duration):
        return duration(left.nanos - right.nanos)
    raise TypeError("no such overload")


# ------------------------------------------------------------------ accessors


_OFFSET = re.compile(r"([+-]?)(\d{2}):(\d{2})\Z")


def _local(value: Any, zone: Any) -> datetime.datetime:
    if type(value) is not Timestamp:
        raise TypeError("no such overload")
    seconds = value.nanos // NANOS
    moment = _EPOCH + datetime.timedelta(seconds=seconds)
    if zone is None:
        return moment
    if type(zone) is not str:
        raise TypeError("no such overload")
    found = _OFFSET.match(zone)
    try:
        if found is not None:
            hours, minutes = int(found.group(2)), int(found.group(3))
            if hours > 23 or minutes > 59:
                raise ValueError("invalid time zone")
            offset = datetime.timedelta(hours=hours, minutes=minutes)
            return moment.astimezone(datetime.timezone(-offset if found.group(1) == "-" else offset))
        if zone == "UTC":
            return moment
        import zoneinfo  # only rules that name a time zone pay for it

        return moment.astimezone(zoneinfo.ZoneInfo(zone))
    except (ValueError, LookupError, OverflowError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError("invalid time zone") from None


def get_full_year(value: Any, zone: Any = None) -> int:
    return _local(value, zone).year


def get_month(value: Any, zone: Any = None) -> int:
    return _local(value, zone).month - 1


def get_date(value: Any, zone: Any = None) -> int:
    return _local(value, zone).day


def get_day_of_month(value: Any, zone: Any = None) -> int:
    return _local(value, zone).day - 1


def get_day_of_week(value: Any, zone: Any = None) -> int:
    return _local(value, zone).isoweekday() % 7  # 0 is Sunday


def get_day_of_year(value: Any, zone: Any = None) -> int:
    return _local(value, zone).timetuple().tm_yday - 1


def _truncated(nanos: int, unit: int) -> int:
    """Division toward zero, as a duration's accessors count whole units."""
    quotient = abs(nanos) // unit
    return -quotient if nanos < 0 else quotient


def get_hours(value: Any, zone: Any = None) -> int:
    if type(value) is Duration and zone is None:
        return _truncated(value.nanos, 3600 * NANOS)
    return _local(value, zone).hour


def get_minutes(value: Any, zone: Any = None) -> int:
    if type(value) is Duration and zone is None:
        return _truncated(value.nanos, 60 * NANOS)
    return _local(value, zone).minute


def get_seconds(value: Any, zone: Any = None) -> int:
    if type(value) is Duration and zone is None:
        return _truncated(value.nanos, NANOS)
    return _local(value, zone).second


def get_milliseconds(value: Any, zone: Any = None) -> int:
    if type(value) is Duration and zone is None:
        millis = _truncated(value.nanos, 10**6)
        return -(-millis % 1000) if millis < 0 else millis % 1000
    _local(value, zone)  # checks the type and the zone
    nanos: int = value.nanos
    return nanos % NANOS // 10**6


ACCESSORS = {
    "getFullYear": get_full_year,
    "getMonth": get_month,
    "getDate": get_date,
    "getDayOfMonth": get_day_of_month,
    "getDayOfWeek": get_day_of_week,
    "getDayOfYear": get_day_of_year,
    "getHours": get_hours,
    "getMinutes": get_minutes,
    "getSeconds": get_seconds,
    "getMilliseconds": get_milliseconds,
}
