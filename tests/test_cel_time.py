"""CEL timestamps and durations on plain values (ruleauth/cel/timestamps.py): text, ranges, accessors."""

import pytest

from ruleauth.cel import timestamps as t


@pytest.mark.parametrize(
    "text, seconds, nanos",
    [
        ("1970-01-01T00:00:00Z", 0, 0),
        ("2009-02-13T23:31:30Z", 1234567890, 0),
        ("2009-02-13t23:31:30z", 1234567890, 0),  # RFC 3339 allows lower case
        ("2009-02-14T01:31:30+02:00", 1234567890, 0),
        ("2009-02-13T21:01:30-02:30", 1234567890, 0),
        ("2009-02-13T23:31:30.1Z", 1234567890, 100_000_000),
        ("2009-02-13T23:31:30.123456789Z", 1234567890, 123_456_789),
        ("1969-12-31T23:59:59.5Z", -1, 500_000_000),
        ("0001-01-01T00:00:00Z", -62135596800, 0),
        ("9999-12-31T23:59:59.999999999Z", 253402300799, 999_999_999),
    ],
)
def test_rfc3339_texts_are_read_to_the_nanosecond(text, seconds, nanos):
    assert t.parse_timestamp(text).nanos == seconds * t.NANOS + nanos


@pytest.mark.parametrize(
    "text",
    [
        "2009-02-13T23:31:30",
        "2009-02-13 23:31:30Z",
        "2009-02-30T00:00:00Z",
        "2009-02-13T24:00:00Z",
        "2009-02-13T23:31:60Z",
        "2009-02-13T23:31:30+24:00",
        "2009-02-13T23:31:30.1234567891Z",
        "0000-01-01T00:00:00Z",
        "10000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59-00:01",
        "",
        "now",
    ],
)
def test_other_texts_and_moments_out_of_range_are_errors(text):
    with pytest.raises(ValueError):
        t.parse_timestamp(text)


@pytest.mark.parametrize(
    "text, nanos",
    [
        ("0", 0),
        ("1s", t.NANOS),
        ("-1.5s", -1_500_000_000),
        ("+2m", 120 * t.NANOS),
        ("1h30m", 5400 * t.NANOS),
        ("1h1h", 7200 * t.NANOS),
        (".5s", 500_000_000),
        ("5.s", 5 * t.NANOS),
        ("250ms", 250_000_000),
        ("3us", 3000),
        ("3µs", 3000),
        ("7ns", 7),
        ("1.000000001s", 1_000_000_001),
        ("9223372036.854775807s", 2**63 - 1),
        ("-9223372036.854775808s", -(2**63)),
    ],
)
def test_durations_are_read_exactly_in_nanoseconds(text, nanos):
    assert t.parse_duration(text).nanos == nanos


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-",
        "s",
        "1",
        "1d",
        "1m-1s",
        "--1s",
        "1.2.3s",
        "9223372036.854775808s",
        "200000000000s",
        "-320000000000s",
        "1 s",
    ],
)
def test_other_duration_texts_and_durations_out_of_range_are_errors(text):
    with pytest.raises(ValueError):
        t.parse_duration(text)


def test_arithmetic_past_either_end_is_an_error_and_within_it_is_exact():
    last, first = t.parse_timestamp("9999-12-31T23:59:59.999999999Z"), t.parse_timestamp("0001-01-01T00:00:00Z")
    one = t.parse_duration("1ns")
    with pytest.raises(ValueError):
        t.add(last, one)
    with pytest.raises(ValueError):
        t.subtract(first, one)
    with pytest.raises(ValueError):
        t.subtract(last, first)  # about 10,000 years: past a duration's 64-bit nanoseconds
    with pytest.raises(ValueError):
        t.add(t.parse_duration("9223372036s"), t.parse_duration("1s"))
    assert t.subtract(t.add(last, t.parse_duration("-1ns")), last).nanos == -1
    assert t.add(one, first).nanos == first.nanos + 1
    with pytest.raises(TypeError):
        t.add(last, last)


@pytest.mark.parametrize(
    "nanos, text",
    [
        (0, "1970-01-01T00:00:00Z"),
        (100_000_000, "1970-01-01T00:00:00.100Z"),
        (123_456_000, "1970-01-01T00:00:00.123456Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
    ],
)
def test_a_timestamp_is_written_with_0_3_6_or_9_fractional_digits(nanos, text):
    assert str(t.timestamp(nanos)) == text
    assert t.parse_timestamp(text).nanos == nanos


@pytest.mark.parametrize(
    "nanos, text", [(0, "0s"), (-1_500_000_000, "-1.500s"), (1, "0.000000001s"), (3600 * t.NANOS, "3600s")]
)
def test_a_duration_is_written_in_seconds(nanos, text):
    assert str(t.duration(nanos)) == text
    assert t.parse_duration(text).nanos == nanos


@pytest.mark.parametrize(
    "zone, hours, day_of_week",
    [
        (None, 23, 5),
        ("UTC", 23, 5),
        ("+02:00", 1, 6),
        ("02:00", 1, 6),
        ("-02:30", 21, 5),
        ("Asia/Kathmandu", 5, 6),
        ("America/St_Johns", 20, 5),
    ],
)
def test_accessors_read_the_time_in_the_zone_asked(zone, hours, day_of_week):
    moment = t.parse_timestamp("2009-02-13T23:31:30.123456789Z")
    args = () if zone is None else (zone,)
    assert t.get_hours(moment, *args) == hours
    assert t.get_day_of_week(moment, *args) == day_of_week
    assert t.get_milliseconds(moment, *args) == 123
    assert (
        t.get_full_year(moment),
        t.get_month(moment),
        t.get_date(moment),
        t.get_day_of_month(moment),
        t.get_day_of_year(moment),
    ) == (2009, 1, 13, 12, 43)


@pytest.mark.parametrize("zone", ["Not/AZone", "+25:00", "+02:60", "2", "", 5])
def test_an_unknown_time_zone_is_an_error(zone):
    with pytest.raises((ValueError, TypeError)):
        t.get_hours(t.parse_timestamp("2009-02-13T23:31:30Z"), zone)


def test_a_durations_accessors_count_whole_units_toward_zero():
    minus = t.parse_duration("-1h30m1.5s")
    assert (t.get_hours(minus), t.get_minutes(minus), t.get_seconds(minus), t.get_milliseconds(minus)) == (
        -1,
        -90,
        -5401,
        -500,
    )
    with pytest.raises(TypeError):
        t.get_full_year(minus)


def test_timestamps_and_durations_equal_and_order_only_their_own_kind():
    a, b = t.timestamp(1), t.timestamp(2)
    assert a < b and a != b and a == t.timestamp(1) and t.duration(1) != a
    with pytest.raises(TypeError):
        _ = a < t.duration(2)
