"""ID token verification: only an unexpired RS256 token from our issuer, for our audience, passes."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from jwt.algorithms import RSAAlgorithm

from aviary.auth import JwksKeySource, TokenVerifier
from aviary.caller import Caller
from aviary.errors import ServiceUnavailable, Unauthorized
from tests.tokens import AUDIENCE, ISSUER, KEY_ID, TokenIssuer


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def verifier(issuer) -> TokenVerifier:
    return TokenVerifier(ISSUER, AUDIENCE, issuer.key_source)


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_valid_token_gives_the_user_id_and_the_handle_asked_for(issuer, verifier):
    assert verifier.caller_from_authorization(f"Bearer {issuer.token('alice')}") == Caller(
        "sub-alice", "alice"
    )
    assert verifier.caller_from_authorization(f"bearer  {issuer.token('bob')} ") == Caller("sub-bob", "bob")


def test_the_caller_is_the_sub_whatever_the_username_spelling(issuer, verifier):
    # Two accounts whose usernames differ only by case are two users; both ask for the handle
    # "alice", which only one of them can hold (aviary.handles).
    upper = verifier.verify(issuer.token("ALICE", sub="a-second-account"))
    assert upper == Caller("a-second-account", "alice")
    assert upper.user_id != verifier.verify(issuer.token("alice")).user_id


def test_a_username_that_is_no_handle_still_identifies_the_caller(issuer, verifier):
    # Cognito usernames may be e-mail addresses; such a user acts under their ID with no handle.
    assert verifier.verify(issuer.token("someone@example.com", sub="u-1")) == Caller("u-1", None)


@pytest.mark.parametrize("sub", ["", "has space", "a/b", "x" * 129])
def test_a_sub_that_is_no_user_id_is_rejected(issuer, verifier, sub):
    assert "sub" in _rejected(verifier, f"Bearer {issuer.token(sub=sub)}").message


def test_expiry_has_a_small_leeway_for_clock_skew(issuer, verifier):
    assert verifier.verify(issuer.token(exp=int(time.time()) - 10)).handle == "alice"


def _rejected(verifier: TokenVerifier, header: str | None) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        verifier.caller_from_authorization(header)
    error = caught.value
    assert error.field == "Authorization"
    assert error.http_status == 401
    assert error.to_body()["error"]["field"] == "Authorization"
    return error


@pytest.mark.parametrize("header", [None, "", "   ", "Bearer", "Bearer   ", "Basic YWxpY2U6cHc=", "alice"])
def test_a_missing_or_non_bearer_header_is_rejected(verifier, header):
    assert "Authorization" in _rejected(verifier, header).message


@pytest.mark.parametrize("token", ["abc", "a.b.c", "....", "eyJ.eyJ.sig", "Bearer x"])
def test_a_malformed_token_is_rejected(verifier, token):
    _rejected(verifier, f"Bearer {token}")


def test_an_expired_token_is_rejected(issuer, verifier):
    error = _rejected(verifier, f"Bearer {issuer.token(exp=int(time.time()) - 600)}")
    assert "expired" in error.message


@pytest.mark.parametrize(
    "claim", [{"aud": "another-client"}, {"iss": "https://cognito-idp.us-east-1.amazonaws.com/other"}]
)
def test_a_token_for_another_audience_or_issuer_is_rejected(issuer, verifier, claim):
    _rejected(verifier, f"Bearer {issuer.token(**claim)}")


@pytest.mark.parametrize("missing", ["exp", "iss", "aud", "sub", "cognito:username"])
def test_a_token_missing_a_required_claim_is_rejected(issuer, verifier, missing):
    _rejected(verifier, f"Bearer {issuer.token(**{missing: None})}")


def test_alg_none_is_rejected(issuer, verifier):
    unsigned = f"{_segment({'alg': 'none', 'typ': 'JWT', 'kid': KEY_ID})}.{_segment(issuer.claims())}."
    _rejected(verifier, f"Bearer {unsigned}")


def test_hs256_is_rejected(issuer, verifier):
    forged = jwt.encode(
        issuer.claims(), "a-shared-secret-of-32-bytes-xxxxx", algorithm="HS256", headers={"kid": KEY_ID}
    )
    _rejected(verifier, f"Bearer {forged}")


def test_a_token_signed_by_another_key_with_our_kid_is_rejected(verifier):
    impostor = TokenIssuer(key_id=KEY_ID)
    _rejected(verifier, f"Bearer {impostor.token()}")


def test_a_token_with_an_unknown_or_missing_kid_is_rejected(issuer, verifier):
    _rejected(verifier, f"Bearer {issuer.token(headers={'kid': 'rotated-away'})}")
    no_kid = jwt.encode(issuer.claims(), issuer.private_key, algorithm="RS256")
    _rejected(verifier, f"Bearer {no_kid}")


def test_a_tampered_payload_is_rejected(issuer, verifier):
    header, _, signature = issuer.token("alice").split(".")
    forged = f"{header}.{_segment(issuer.claims('mallory'))}.{signature}"
    _rejected(verifier, f"Bearer {forged}")


@pytest.mark.parametrize(
    "header", [[1, 2], "text", {"alg": "RS256"}, {"alg": "RS256", "kid": 7}, {"alg": "RS256", "kid": ""}]
)
def test_a_token_header_that_is_not_a_usable_object_is_rejected(issuer, verifier, header):
    _rejected(verifier, f"Bearer {_segment(header)}.{_segment(issuer.claims())}.c2ln")


def test_a_deeply_nested_header_is_rejected_not_a_crash(verifier):
    nested = base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).rstrip(b"=").decode()
    _rejected(verifier, f"Bearer {nested}.e30.c2ln")


def test_an_oversized_token_is_rejected_before_parsing(verifier):
    _rejected(verifier, "Bearer " + "a" * 10_000)


def test_a_non_string_username_is_rejected(issuer, verifier):
    _rejected(verifier, f"Bearer {issuer.token(**{'cognito:username': 42})}")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _wait_for_refresh(source: JwksKeySource) -> None:
    deadline = time.monotonic() + 5
    while source.refreshing and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not source.refreshing


@pytest.fixture
def jwks_source(issuer):
    """A JwksKeySource whose fetch returns the issuer's key set, counted (no HTTP)."""
    clock = FakeClock()
    source = JwksKeySource("https://example.invalid/jwks.json", recheck_seconds=30, clock=clock)
    jwk = RSAAlgorithm.to_jwk(issuer.public_key, as_dict=True) | {"kid": KEY_ID, "alg": "RS256", "use": "sig"}
    fetches = []

    def fetch():
        fetches.append(clock.now)
        if source.fail_next:
            raise jwt.PyJWKClientConnectionError("unreachable")
        return {"keys": [jwk]}

    source.fail_next = False
    source.client.fetch_data = fetch
    return source, clock, fetches


def test_jwks_source_asks_for_a_retry_until_keys_arrive_then_serves_them_from_memory(issuer, jwks_source):
    source, _, fetches = jwks_source
    with pytest.raises(ServiceUnavailable):
        source(KEY_ID)  # nothing fetched yet: starts a background fetch
    _wait_for_refresh(source)
    verifier = TokenVerifier(ISSUER, AUDIENCE, source)
    assert verifier.verify(issuer.token("carol")).user_id == "sub-carol"
    assert verifier.verify(issuer.token("dave")).user_id == "sub-dave"
    assert len(fetches) == 1


def test_jwks_source_refetches_for_an_unknown_kid_at_most_once_per_recheck_interval(jwks_source):
    source, clock, fetches = jwks_source
    source.refresh()
    with pytest.raises(LookupError):
        source("unknown")  # fetched just now: the kid is simply not ours
    clock.now += 31
    with pytest.raises(ServiceUnavailable):
        source("unknown")  # may be a new key: one fetch in the background, caller retries
    _wait_for_refresh(source)
    with pytest.raises(LookupError):
        source("unknown")
    assert len(fetches) == 2


def test_jwks_source_keeps_its_keys_when_a_fetch_fails(jwks_source):
    source, clock, fetches = jwks_source
    source.refresh()
    source.fail_next = True
    clock.now += 4000  # past max age: a background refresh starts, and fails
    assert source(KEY_ID) is not None
    _wait_for_refresh(source)
    assert source(KEY_ID) is not None
    assert len(fetches) == 2


def test_an_unknown_kid_from_the_jwks_source_is_a_401(issuer, jwks_source):
    source, _, _ = jwks_source
    source.refresh()
    verifier = TokenVerifier(ISSUER, AUDIENCE, source)
    with pytest.raises(Unauthorized):
        verifier.verify(issuer.token(headers={"kid": "someone-elses"}))


class _CountingKeys:
    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer, self.calls = issuer, 0

    def __call__(self, kid: str):
        self.calls += 1
        return self.issuer.key_source(kid)


def test_a_token_is_verified_once_then_remembered_until_it_expires(issuer):
    keys, now = _CountingKeys(issuer), [time.time()]
    verifier = TokenVerifier(ISSUER, AUDIENCE, keys, leeway_seconds=0, clock=lambda: now[0])
    token = issuer.token("alice", exp=int(now[0]) + 60)
    assert [verifier.verify(token).user_id for _ in range(5)] == ["sub-alice"] * 5
    assert keys.calls == 1
    now[0] += 61  # the remembered token has expired meanwhile
    with pytest.raises(Unauthorized, match="expired"):
        verifier.verify(token)


def test_remembering_never_lets_a_different_token_through(issuer):
    verifier = TokenVerifier(ISSUER, AUDIENCE, issuer.key_source)
    good = issuer.token("alice")
    assert verifier.verify(good).user_id == "sub-alice"
    header, _payload, signature = good.split(".")
    forged_payload = _segment(issuer.claims("mallory"))
    with pytest.raises(Unauthorized):
        verifier.verify(f"{header}.{forged_payload}.{signature}")


def test_remembered_tokens_are_bounded(issuer):
    keys = _CountingKeys(issuer)
    verifier = TokenVerifier(ISSUER, AUDIENCE, keys, remembered_tokens=2)
    first, second, third = (issuer.token(handle) for handle in ("a1", "b2", "c3"))
    for token in (first, second, third):
        verifier.verify(token)
    verifier.verify(first)  # pushed out by the third: verified again
    assert keys.calls == 4
