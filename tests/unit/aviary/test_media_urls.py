"""Media URLs: the object's key under the base URL, pinned to the accepted version when one is known."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aviary.keys import media_object_key
from aviary.media import parse_media_key
from aviary.media_urls import MEDIA_BASE_URL_VARIABLE, MediaUrls, MediaUrlSettingError, parse_base_url

BASE = "https://media.aviary.example.com"
OWNER = "3f1c2d4e-8a9b-4c7d-9e0f-1a2b3c4d5e6f"  # a Cognito sub
MEDIA_ID = "01JD0000000000000000000001"


def test_the_path_is_the_object_key_and_the_query_pins_the_version():
    url = MediaUrls(BASE).url(OWNER, MEDIA_ID, "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")

    assert url == f"{BASE}/{media_object_key(OWNER, MEDIA_ID)}?versionId=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"


@pytest.mark.parametrize("version", [None, ""])
def test_without_a_known_version_the_url_has_no_query(version):
    assert MediaUrls(BASE).url(OWNER, MEDIA_ID, version) == f"{BASE}/media/{OWNER}/{MEDIA_ID}"


@given(version=st.text(min_size=1, max_size=60))
def test_any_version_comes_back_whole_from_the_query(version):
    url = MediaUrls(BASE).url(OWNER, MEDIA_ID, version)
    parts = urlsplit(url)

    assert parse_qs(parts.query, keep_blank_values=True) == {"versionId": [version]}
    assert parse_media_key(parts.path.removeprefix("/")) == (OWNER, MEDIA_ID)


def test_urls_follow_the_ids_order_and_pin_only_the_known_versions():
    urls = MediaUrls(BASE).urls(OWNER, ["B", "A", "C"], {"A": "va", "C": "vc", "other": "vx"})

    assert urls == [
        f"{BASE}/media/{OWNER}/B",
        f"{BASE}/media/{OWNER}/A?versionId=va",
        f"{BASE}/media/{OWNER}/C?versionId=vc",
    ]
    assert MediaUrls(BASE).urls(OWNER, [], {"A": "va"}) == []
    assert MediaUrls(BASE).urls(OWNER, ["A"], None) == [f"{BASE}/media/{OWNER}/A"]


@pytest.mark.parametrize(
    ("raw", "base"),
    [
        ("https://media.aviary.example.com", BASE),
        ("https://media.aviary.example.com/", BASE),
        (" https://media.aviary.example.com ", BASE),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),  # the local front door
        ("https://cdn.example.com/aviary/", "https://cdn.example.com/aviary"),
    ],
)
def test_a_base_url_is_kept_without_its_trailing_slash(raw, base):
    assert parse_base_url(raw) == base
    assert MediaUrls(raw).url(OWNER, MEDIA_ID) == f"{base}/media/{OWNER}/{MEDIA_ID}"


@pytest.mark.parametrize(
    "raw",
    [
        "media.aviary.example.com",  # no scheme
        "ftp://media.aviary.example.com",
        "https://",
        "https:///media",
        "https://media.aviary.example.com/?x=1",
        "https://media.aviary.example.com/#top",
    ],
)
def test_a_bad_base_url_is_refused_naming_the_variable(raw):
    with pytest.raises(
        MediaUrlSettingError, match=rf"^{MEDIA_BASE_URL_VARIABLE} must be an absolute http\(s\) URL"
    ):
        MediaUrls.from_environment({MEDIA_BASE_URL_VARIABLE: raw})


@pytest.mark.parametrize("environ", [{}, {MEDIA_BASE_URL_VARIABLE: ""}, {MEDIA_BASE_URL_VARIABLE: "  "}])
def test_a_missing_base_url_is_refused_naming_the_variable(environ):
    with pytest.raises(MediaUrlSettingError, match=rf"^{MEDIA_BASE_URL_VARIABLE} is not set"):
        MediaUrls.from_environment(environ)


def test_from_the_environment():
    assert MediaUrls.from_environment({MEDIA_BASE_URL_VARIABLE: f"{BASE}/"}) == MediaUrls(BASE)
