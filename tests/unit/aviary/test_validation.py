"""The write path's input checks: exact boundaries, the field each rejection names, and no crashes."""

from __future__ import annotations

import json
import math
import sys
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aviary import validation
from aviary.errors import ValidationError
from aviary.ids import new_ulid
from aviary.validation import (
    MAX_BODY_BYTES,
    MIB,
    handle,
    idempotency_key,
    json_object_body,
    known_fields,
    media_ids,
    media_upload,
    optional_tweet_id,
    tweet_id,
    tweet_text,
)

ULID_A = new_ulid(1_700_000_000_000, bytes(10))
ULID_B = new_ulid(1_700_000_000_001, bytes(10))
ULID_C = new_ulid(1_700_000_000_002, bytes(10))
ULID_D = new_ulid(1_700_000_000_003, bytes(10))
ULID_E = new_ulid(1_700_000_000_004, bytes(10))

E_ACUTE_DECOMPOSED = "e\u0301"  # two code points that NFC composes into one, U+00E9


def rejects(check: Callable[..., Any], *args: Any, field: str) -> ValidationError:
    """Run a check expecting it to refuse; assert the field it names and return the error."""
    with pytest.raises(ValidationError) as caught:
        check(*args)
    assert caught.value.field == field
    assert caught.value.message
    body = caught.value.to_body()
    json.dumps(body)  # every rejection must be serialisable as the JSON error body
    assert body["error"]["field"] == field
    return caught.value


# --- tweet_text ---------------------------------------------------------------------------------


def test_text_280_code_points_is_accepted_and_281_is_not() -> None:
    assert tweet_text("a" * 280) == "a" * 280
    error = rejects(tweet_text, "a" * 281, field="text")
    assert error.message == (
        "text must be at most 280 characters after Unicode NFC normalisation; it has 281."
    )


def test_text_of_one_character_is_accepted() -> None:
    assert tweet_text("a") == "a"


def test_text_counts_code_points_after_nfc() -> None:
    # 560 code points on the wire, 280 after composition: it fits.
    composed = tweet_text(E_ACUTE_DECOMPOSED * 280)
    assert composed == "\u00e9" * 280
    error = rejects(tweet_text, E_ACUTE_DECOMPOSED * 281, field="text")
    assert "it has 281" in error.message


def test_decomposed_e_acute_counts_as_one() -> None:
    assert tweet_text(E_ACUTE_DECOMPOSED) == "\u00e9"
    assert len(tweet_text(E_ACUTE_DECOMPOSED)) == 1
    assert tweet_text("a" * 279 + E_ACUTE_DECOMPOSED) == "a" * 279 + "\u00e9"


def test_hangul_jamo_compose_to_syllables() -> None:
    jamo = "\u1100\u1161\u11a8"  # three code points, one syllable U+AC01 after NFC
    assert tweet_text(jamo * 280) == "\uac01" * 280


def test_emoji_count_as_one_code_point_each() -> None:
    assert tweet_text("\U0001f426" * 280) == "\U0001f426" * 280
    error = rejects(tweet_text, "\U0001f426" * 281, field="text")
    assert "it has 281" in error.message


def test_emoji_sequences_count_every_code_point() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # 5 code points, one glyph
    assert len(tweet_text(family * 56)) == 280
    rejects(tweet_text, family * 56 + "a", field="text")


def test_text_that_nfc_cannot_shrink_enough_is_refused_before_normalising() -> None:
    error = rejects(tweet_text, "a" * 2000, field="text")
    assert "before normalisation" in error.message


def test_no_character_decomposes_to_more_than_the_assumed_shrink_factor() -> None:
    # The early length refusal in tweet_text is sound only while this holds for the running Unicode.
    longest = max(
        len(unicodedata.normalize("NFD", chr(point)))
        for point in range(sys.maxunicode + 1)
        if not 0xD800 <= point <= 0xDFFF
    )
    assert longest <= validation._MAX_NFC_SHRINK


def test_text_keeps_surrounding_whitespace_newlines_and_tabs() -> None:
    assert tweet_text("  hello\n\tworld  ") == "  hello\n\tworld  "


@pytest.mark.parametrize("value", ["", " ", "\n", "\t \n", "\u3000", "\u00a0\u2003", " " * 280])
def test_blank_text_is_refused(value: str) -> None:
    error = rejects(tweet_text, value, field="text")
    assert "whitespace" in error.message


@pytest.mark.parametrize(
    "value", ["\u200b", "\u200b\u200b \u200b", "\u2060", "\ufeff", "\u0301", "\u200d\u200c", " \u180e "]
)
def test_text_without_a_visible_character_is_refused(value: str) -> None:
    # Zero-width spaces and joiners, word joiners, BOMs, lone combining marks: nothing to see.
    error = rejects(tweet_text, value, field="text")
    assert "visible character" in error.message


@pytest.mark.parametrize(
    "char", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
)
def test_bidirectional_overrides_embeddings_and_isolates_are_refused(char: str) -> None:
    error = rejects(tweet_text, f"pay {char}evil.exe", field="text")
    assert f"U+{ord(char):04X}" in error.message
    assert "position 5" in error.message


@pytest.mark.parametrize(
    "value",
    ["\u05e9\u05dc\u05d5\u05dd", "abc \u200f\u05d0", "\U0001f468\u200d\U0001f469", "\u00e9\u200b", "x\u0301"],
)
def test_right_to_left_text_marks_and_joined_emoji_are_accepted(value: str) -> None:
    assert tweet_text(value) == unicodedata.normalize("NFC", value)


@pytest.mark.parametrize("char", ["\x00", "\x07", "\r", "\x1b", "\x1f", "\x7f", "\x80", "\x85", "\x9f"])
def test_control_characters_are_refused(char: str) -> None:
    error = rejects(tweet_text, f"hi{char}there", field="text")
    assert f"U+{ord(char):04X}" in error.message
    assert "position 3" in error.message


@pytest.mark.parametrize("value", ["\ud800", "a\udfff", "\udc00\ud800", json.loads('"x\\ud83d"')])
def test_lone_surrogates_are_refused(value: str) -> None:
    error = rejects(tweet_text, value, field="text")
    assert "surrogate" in error.message


def test_paired_surrogate_escape_from_json_is_one_emoji() -> None:
    assert tweet_text(json.loads('"\\ud83d\\udc26"')) == "\U0001f426"


@pytest.mark.parametrize("value", [None, 1, 1.5, True, [], {}, ["hi"], b"hi"])
def test_text_must_be_a_string(value: object) -> None:
    error = rejects(tweet_text, value, field="text")
    assert "must be a string" in error.message


# --- handle ---------------------------------------------------------------------------------------


def test_handle_is_lower_cased() -> None:
    assert handle("Alice_99") == "alice_99"
    assert handle("a") == "a"
    assert handle("A" * 15) == "a" * 15


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a" * 16,
        "@alice",
        "al ice",
        "al-ice",
        "al.ice",
        "ålice",
        "\u0130",
        "alice\n",
        "\uff41",
        None,
        7,
        [],
    ],
)
def test_bad_handles_are_refused(value: object) -> None:
    rejects(handle, value, field="handle")


def test_handle_names_the_given_field() -> None:
    rejects(handle, "no way", "followee", field="followee")


def test_a_bad_handle_is_explained_with_an_example_and_a_leading_at_sign_with_the_fix() -> None:
    error = rejects(handle, "al-ice", "USER", field="USER")
    assert error.message == (
        "USER must be a handle: 1 to 15 letters (A-Z, a-z), digits or underscores, such as alice or "
        "bob_99, not 'al-ice'."
    )
    error = rejects(handle, "@Alice", field="handle")
    assert error.message.endswith("not '@Alice'; write it without the '@': Alice.")
    assert "without" not in rejects(handle, "@", field="handle").message  # nothing left to suggest


# --- tweet_id / optional_tweet_id -----------------------------------------------------------------


def test_tweet_id_accepts_a_canonical_ulid() -> None:
    assert tweet_id(ULID_A) == ULID_A


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (ULID_A.lower(), "upper case"),
        (ULID_A[:-1], "25 characters"),
        (ULID_A + "0", "27 characters"),
        (ULID_A[:-1] + "U", "'U' is not a Crockford"),
        ("8" + ULID_A[1:], "above 7"),
        ("", "0 characters"),
    ],
)
def test_tweet_id_explains_why_it_refuses(value: str, reason: str) -> None:
    error = rejects(tweet_id, value, field="id")
    assert reason in error.message


@pytest.mark.parametrize("value", [None, 0, 1.0, False, [ULID_A], {"id": ULID_A}])
def test_tweet_id_must_be_a_string(value: object) -> None:
    rejects(tweet_id, value, field="id")


def test_optional_tweet_id() -> None:
    assert optional_tweet_id(None, "reply_to") is None
    assert optional_tweet_id(ULID_A, "reply_to") == ULID_A
    rejects(optional_tweet_id, "nope", "reply_to", field="reply_to")
    rejects(optional_tweet_id, "", "reply_to", field="reply_to")


# --- media_ids ------------------------------------------------------------------------------------


def test_media_ids_absent_or_null_is_empty() -> None:
    assert media_ids(None) == ()
    assert media_ids([]) == ()


def test_media_ids_up_to_four_in_order() -> None:
    assert media_ids([ULID_D, ULID_A, ULID_C, ULID_B]) == (ULID_D, ULID_A, ULID_C, ULID_B)


def test_five_media_ids_are_refused() -> None:
    error = rejects(media_ids, [ULID_A, ULID_B, ULID_C, ULID_D, ULID_E], field="media_ids")
    assert "at most 4" in error.message


def test_duplicate_media_ids_are_refused() -> None:
    error = rejects(media_ids, [ULID_A, ULID_B, ULID_A], field="media_ids")
    assert ULID_A in error.message


@pytest.mark.parametrize(
    "value", ["", ULID_A, {}, 3, True, [ULID_A, ULID_B.lower()], [ULID_A, None], [[ULID_A]]]
)
def test_bad_media_ids_are_refused(value: object) -> None:
    rejects(media_ids, value, field="media_ids")


def test_bad_media_id_message_names_its_position() -> None:
    error = rejects(media_ids, [ULID_A, "x"], field="media_ids")
    assert "media_ids[1]" in error.message


# --- idempotency_key ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a" * 8, "A" * 64, "3f2c1b7e-0d4a-4c6e-9a55-2e8b1f0c7d93", "key_-_0123"])
def test_good_idempotency_keys(value: str) -> None:
    assert idempotency_key(value) == value


@pytest.mark.parametrize(
    "value",
    [None, "", "a" * 7, "a" * 65, "has space", "dots.dots.dots", "ключключключ", "abcdefgh\n", 12345678],
)
def test_bad_idempotency_keys_are_refused(value: object) -> None:
    rejects(idempotency_key, value, field="Idempotency-Key")


def test_missing_idempotency_key_says_it_is_required() -> None:
    error = rejects(idempotency_key, None, field="Idempotency-Key")
    assert "required" in error.message


# --- media_upload ---------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "image/gif", "image/webp"])
def test_images_up_to_5_mib(content_type: str) -> None:
    assert media_upload(content_type, 1) == (content_type, 1)
    assert media_upload(content_type, 5 * MIB) == (content_type, 5 * MIB)
    error = rejects(media_upload, content_type, 5 * MIB + 1, field="size")
    assert "5 MiB" in error.message


def test_video_up_to_50_mib() -> None:
    assert media_upload("video/mp4", 50 * MIB) == ("video/mp4", 50 * MIB)
    rejects(media_upload, "video/mp4", 50 * MIB + 1, field="size")


def test_content_type_is_case_insensitive() -> None:
    assert media_upload("IMAGE/PNG", 10) == ("image/png", 10)


@pytest.mark.parametrize(
    "content_type",
    [
        "image/svg+xml",
        "video/quicktime",
        "text/html",
        "image/png; charset=binary",
        " image/png",
        "image/",
        "",
        "\u0130mage/png",
        None,
        5,
        ["image/png"],
    ],
)
def test_other_content_types_are_refused(content_type: object) -> None:
    rejects(media_upload, content_type, 10, field="content_type")


@pytest.mark.parametrize("size", [0, -1, True, False, 1.0, 10.5, "10", None, [10], float("nan")])
def test_size_must_be_a_positive_int(size: object) -> None:
    rejects(media_upload, "image/png", size, field="size")


# --- json_object_body -----------------------------------------------------------------------------


def test_body_object_from_str_and_bytes() -> None:
    assert json_object_body('{"text": "hi"}') == {"text": "hi"}
    assert json_object_body('{"text": "h\u00e9"}'.encode()) == {"text": "h\u00e9"}
    assert json_object_body(b"{}") == {}


@pytest.mark.parametrize(
    "raw",
    [None, "", b"", "[]", "1", '"text"', "null", "true", b"[1, 2]", "{", "{'a': 1}", '{"a": 1} x', "   "],
)
def test_body_must_be_one_json_object(raw: str | bytes | None) -> None:
    rejects(json_object_body, raw, field="body")


def test_body_with_a_repeated_key_is_refused() -> None:
    error = rejects(json_object_body, '{"text": "a", "text": "b"}', field="body")
    assert "'text'" in error.message
    rejects(json_object_body, '{"a": {"b": 1, "b": 2}}', field="body")


@pytest.mark.parametrize("raw", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}'])
def test_body_with_non_standard_numbers_is_refused(raw: str) -> None:
    error = rejects(json_object_body, raw, field="body")
    assert "not valid JSON" in error.message


def test_body_size_limit_is_16_kib_of_utf8() -> None:
    padding = MAX_BODY_BYTES - len('{"text": ""}')
    exact = '{"text": "' + "a" * padding + '"}'
    assert len(exact.encode()) == MAX_BODY_BYTES
    assert json_object_body(exact)["text"] == "a" * padding
    rejects(json_object_body, exact.replace('"a', '"aa', 1), field="body")
    # Multi-byte characters count by their UTF-8 size, not as one each.
    rejects(json_object_body, '{"text": "' + "\u00e9" * (padding // 2 + 1) + '"}', field="body")


@pytest.mark.parametrize(
    "raw", [b'{"text": "\xff"}', b'{"text": "\xc3"}', b"\xef\xbb\xbf{}", "{}\ud800", '{"a": "\udfff"}']
)
def test_body_must_be_utf8(raw: str | bytes) -> None:
    rejects(json_object_body, raw, field="body")


def test_deeply_nested_body_is_refused() -> None:
    rejects(json_object_body, '{"a": ' + "[" * 8000 + "]" * 8000 + "}", field="body")


def test_body_with_a_huge_integer_is_refused() -> None:
    rejects(json_object_body, '{"size": ' + "9" * 5000 + "}", field="body")


def test_body_keeps_json_surrogate_escapes_for_the_field_checks() -> None:
    body = json_object_body('{"text": "\\ud800"}')
    rejects(tweet_text, body["text"], field="text")


# --- known_fields ---------------------------------------------------------------------------------


def test_known_fields_accepts_a_subset() -> None:
    known_fields({"text": "hi"}, {"text", "reply_to", "media_ids"})
    known_fields({}, {"text"})


def test_unknown_field_named_is_the_first_in_sorted_order() -> None:
    error = rejects(known_fields, {"text": "", "zeta": 1, "beta": 2}, {"text"}, field="beta")
    assert "'beta'" in error.message
    assert "text" in error.message


def test_unprintable_unknown_field_is_escaped() -> None:
    error = rejects(known_fields, {"\ud800": 1}, {"text"}, field="'\\ud800'")
    assert "\\ud800" in error.message
    rejects(known_fields, {"k" * 500: 1}, {"text"}, field=repr("k" * 40 + "..."))
    rejects(known_fields, {"": 1}, {"text"}, field="''")


def test_known_fields_needs_an_object() -> None:
    rejects(known_fields, ["text"], {"text"}, field="body")


# --- no input crashes a validator -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=20,
)
# Strings shaped like what the validators look for, so the checks past the type test are exercised.
near_misses = st.one_of(
    st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZabcILOU", min_size=24, max_size=28),
    st.text(alphabet="abcXYZ019_-. @", max_size=70),
    st.sampled_from(["image/png", "video/mp4", "IMAGE/GIF", "image/svg+xml"]),
    st.integers(min_value=-1, max_value=60 * MIB),
    st.lists(st.sampled_from([ULID_A, ULID_B, ULID_C, ULID_D, ULID_E, "x"]), max_size=6),
)
anything = json_values | near_misses

VALIDATORS: list[Callable[[Any], Any]] = [
    tweet_text,
    handle,
    tweet_id,
    lambda value: optional_tweet_id(value, "reply_to"),
    media_ids,
    idempotency_key,
    json_object_body,
    lambda value: known_fields(value, {"text", "reply_to", "media_ids"}),
]


def returns_or_refuses(check: Callable[..., Any], *args: Any) -> Any:
    """Call a validator, accepting only a result or a ValidationError that serialises as JSON."""
    try:
        return check(*args)
    except ValidationError as error:
        assert error.field
        json.dumps(error.to_body())
        return None


@pytest.mark.parametrize("check", VALIDATORS)
@given(value=anything)
def test_every_validator_returns_or_raises_validation_error(check: Callable[[Any], Any], value: Any) -> None:
    returns_or_refuses(check, value)


@given(content_type=anything, size=anything)
def test_media_upload_returns_or_raises_validation_error(content_type: Any, size: Any) -> None:
    result = returns_or_refuses(media_upload, content_type, size)
    if result is not None:
        assert result[0] in validation.MEDIA_SIZE_CAPS
        assert 1 <= result[1] <= validation.MEDIA_SIZE_CAPS[result[0]]


@given(st.text() | st.binary())
def test_json_object_body_never_crashes_on_arbitrary_text(raw: str | bytes) -> None:
    result = returns_or_refuses(json_object_body, raw)
    assert result is None or isinstance(result, dict)


def all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(all_finite(item) for item in value)
    if isinstance(value, dict):
        return all(all_finite(item) for item in value.values())
    return True


@given(json_values)
def test_json_object_body_accepts_exactly_the_objects(value: Any) -> None:
    raw = json.dumps(value)
    result = returns_or_refuses(json_object_body, raw)
    if isinstance(value, dict) and all_finite(value) and len(raw.encode()) <= MAX_BODY_BYTES:
        assert result == value
    else:
        assert result is None


# Text that is mostly what people type, with combining marks, controls and surrogates mixed in.
tweet_like_text = st.text(
    alphabet=st.characters() | st.sampled_from(["\u0301", "\u0308", "e", " ", "\n", "\ud800"]),
    max_size=600,
)


@given(st.text(max_size=1200) | tweet_like_text)
def test_tweet_text_output_is_nfc_and_within_limits(value: str) -> None:
    result = returns_or_refuses(tweet_text, value)
    if result is not None:
        assert unicodedata.is_normalized("NFC", result)
        assert 1 <= len(result) <= 280
        assert not result.isspace()
        assert not set(result) & set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
        result.encode("utf-8")  # no surrogates survive


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Cf")), min_size=1, max_size=280))
def test_ordinary_text_within_280_is_accepted(value: str) -> None:
    normalised = unicodedata.normalize("NFC", value)
    # A few characters expand under NFC (U+FB2C becomes three), so check the normalised length.
    visible = any(
        unicodedata.category(char)[0] in "LNPS" or unicodedata.category(char) == "Mc" for char in normalised
    )
    if visible and len(normalised) <= 280:
        assert tweet_text(value) == normalised
