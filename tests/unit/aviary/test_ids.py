"""ULIDs and fixed-width UTC timestamps: both must sort as strings in time order."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aviary.ids import (
    CROCKFORD_ALPHABET,
    MAX_TIME_MS,
    MAX_TIMESTAMP_MS,
    generate_ulid,
    is_ulid,
    new_ulid,
    ulid_time_ms,
    utc_timestamp,
)

ZERO_RANDOM = bytes(10)
times = st.integers(min_value=0, max_value=MAX_TIME_MS)
randoms = st.binary(min_size=10, max_size=10)
ISO_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def test_new_ulid_is_deterministic_for_fixed_inputs() -> None:
    assert new_ulid(1_700_000_000_000, ZERO_RANDOM) == new_ulid(1_700_000_000_000, ZERO_RANDOM)
    assert new_ulid(0, ZERO_RANDOM) == "0" * 26
    assert new_ulid(MAX_TIME_MS, b"\xff" * 10) == "7" + "Z" * 25


def test_new_ulid_known_value() -> None:
    # 1 ms and random value 1: time in the first ten characters, randomness in the last sixteen.
    assert new_ulid(1, bytes(9) + b"\x01") == "0000000001" + "0" * 15 + "1"
    assert new_ulid(32, ZERO_RANDOM)[:10] == "0000000010"


@pytest.mark.parametrize(
    ("now_ms", "random_bytes"),
    [
        (-1, ZERO_RANDOM),
        (MAX_TIME_MS + 1, ZERO_RANDOM),
        (True, ZERO_RANDOM),
        (1.5, ZERO_RANDOM),
        ("1", ZERO_RANDOM),
        (0, bytes(9)),
        (0, bytes(11)),
        (0, "0123456789"),
        (0, None),
    ],
)
def test_new_ulid_rejects_bad_input(now_ms: object, random_bytes: object) -> None:
    with pytest.raises(ValueError):
        new_ulid(now_ms, random_bytes)  # type: ignore[arg-type]


@given(times, randoms)
def test_new_ulid_round_trips_its_time(now_ms: int, random_bytes: bytes) -> None:
    value = new_ulid(now_ms, random_bytes)
    assert is_ulid(value)
    assert len(value) == 26
    assert ulid_time_ms(value) == now_ms


@given(times, times, randoms, randoms)
def test_ulid_order_follows_time(t1: int, t2: int, r1: bytes, r2: bytes) -> None:
    if t1 < t2:
        assert new_ulid(t1, r1) < new_ulid(t2, r2)
    elif t1 > t2:
        assert new_ulid(t1, r1) > new_ulid(t2, r2)


@given(times, randoms, randoms)
def test_ulid_order_within_one_millisecond_follows_random_bytes(t: int, r1: bytes, r2: bytes) -> None:
    assert (new_ulid(t, r1) < new_ulid(t, r2)) == (r1 < r2)


def test_generate_ulid_is_current_and_unique() -> None:
    before = int(datetime.now(UTC).timestamp() * 1000) - 1000
    values = {generate_ulid() for _ in range(100)}
    after = int(datetime.now(UTC).timestamp() * 1000) + 1000
    assert len(values) == 100
    assert all(is_ulid(value) and before <= ulid_time_ms(value) <= after for value in values)


@pytest.mark.parametrize(
    "value",
    [
        "01JD" + "0" * 21,  # 25 characters
        "01JD" + "0" * 23,  # 27 characters
        "01jd" + "0" * 22,  # lower case is not canonical
        "01JD" + "0" * 21 + "I",  # I, L, O and U are not Crockford characters
        "01JD" + "0" * 21 + "L",
        "01JD" + "0" * 21 + "O",
        "01JD" + "0" * 21 + "U",
        "8" + "0" * 25,  # above 128 bits
        "Z" * 26,
        "01JD" + "0" * 21 + "\n",
        "\uff10" * 26,  # fullwidth digits are not ASCII
        "",
        None,
        12345,
        b"0" * 26,
    ],
)
def test_is_ulid_rejects(value: object) -> None:
    assert not is_ulid(value)


def test_is_ulid_accepts_every_alphabet_character() -> None:
    assert len(CROCKFORD_ALPHABET) == 32
    for char in CROCKFORD_ALPHABET:
        assert is_ulid("01JD" + "0" * 21 + char)
    assert is_ulid("7" + "Z" * 25)


def test_ulid_time_ms_rejects_non_ulids() -> None:
    with pytest.raises(ValueError):
        ulid_time_ms("01jd" + "0" * 22)


def test_utc_timestamp_example_and_epoch() -> None:
    moment = datetime(2026, 11, 21, 19, 45, 14, 123000, tzinfo=UTC)
    assert utc_timestamp(int(moment.timestamp() * 1000)) == "2026-11-21T19:45:14.123Z"
    assert utc_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert utc_timestamp(MAX_TIMESTAMP_MS) == "9999-12-31T23:59:59.999Z"


@pytest.mark.parametrize(
    "epoch_ms", [0, 1, 999, 1000, 1_700_000_000_007, MAX_TIMESTAMP_MS - 1, MAX_TIMESTAMP_MS]
)
def test_utc_timestamp_width_is_constant(epoch_ms: int) -> None:
    value = utc_timestamp(epoch_ms)
    assert len(value) == 24
    assert ISO_PATTERN.fullmatch(value)


@pytest.mark.parametrize("epoch_ms", [-1, MAX_TIMESTAMP_MS + 1, True, 1.0, "0", None])
def test_utc_timestamp_rejects_out_of_range(epoch_ms: object) -> None:
    with pytest.raises(ValueError):
        utc_timestamp(epoch_ms)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=MAX_TIMESTAMP_MS))
def test_utc_timestamp_matches_datetime(epoch_ms: int) -> None:
    value = utc_timestamp(epoch_ms)
    parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    seconds, millis = divmod(epoch_ms, 1000)
    assert len(value) == 24
    assert int(parsed.timestamp()) == seconds
    assert parsed.microsecond == millis * 1000


@given(
    st.integers(min_value=0, max_value=MAX_TIMESTAMP_MS), st.integers(min_value=0, max_value=MAX_TIMESTAMP_MS)
)
def test_utc_timestamp_sorts_by_time(a: int, b: int) -> None:
    assert (utc_timestamp(a) < utc_timestamp(b)) == (a < b)
