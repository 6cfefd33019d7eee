"""Token settings: read from SSM, saved on the host, used when SSM cannot be reached."""

from __future__ import annotations

import json

import boto3
import jwt
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from aviary import naming
from aviary.auth import TokenVerifier
from aviary.errors import ServiceUnavailable, Unauthorized
from aviary.token_settings import (
    ReloadingKeySource,
    TokenSettings,
    TokenSettingsError,
    load_token_settings,
    parse_token_settings,
)
from tests.tokens import AUDIENCE, ISSUER, KEY_ID, TokenIssuer


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    return TokenIssuer()


def _settings_json(issuer: TokenIssuer) -> str:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(issuer.public_key))
    return json.dumps({"issuer": ISSUER, "audience": AUDIENCE, "jwks": {"keys": [jwk | {"kid": KEY_ID}]}})


class _Unreachable:
    def get_parameter(self, **_kwargs):
        raise EndpointConnectionError(endpoint_url="https://ssm.us-east-1.amazonaws.com")


def test_published_settings_verify_real_tokens_and_are_saved(tmp_path, issuer):
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        ssm.put_parameter(Name=naming.TOKEN_SETTINGS_PARAMETER, Value=_settings_json(issuer), Type="String")
        settings = load_token_settings(ssm, naming.TOKEN_SETTINGS_PARAMETER, tmp_path / "token-settings.json")
    verifier = TokenVerifier(settings.issuer, settings.audience, settings.key_source())
    assert verifier.verify(issuer.token("alice")).user_id == "sub-alice"
    assert json.loads((tmp_path / "token-settings.json").read_text()) == json.loads(_settings_json(issuer))


def test_a_restart_while_ssm_is_unreachable_uses_the_saved_copy(tmp_path, issuer):
    saved = tmp_path / "token-settings.json"
    saved.write_text(_settings_json(issuer))
    settings = load_token_settings(_Unreachable(), naming.TOKEN_SETTINGS_PARAMETER, saved)
    assert (
        TokenVerifier(settings.issuer, settings.audience, settings.key_source())
        .verify(issuer.token("bob"))
        .user_id
        == "sub-bob"
    )


def test_no_ssm_and_no_saved_copy_is_a_clear_start_failure(tmp_path):
    with pytest.raises(TokenSettingsError, match=r"could not be read .* no copy is saved"):
        load_token_settings(_Unreachable(), naming.TOKEN_SETTINGS_PARAMETER, tmp_path / "missing.json")


def test_a_token_signed_by_another_key_is_refused(issuer):
    settings = parse_token_settings(_settings_json(issuer), source="test")
    stranger = TokenIssuer(key_id="other-key")
    with pytest.raises(Unauthorized, match="unknown key"):
        TokenVerifier(settings.issuer, settings.audience, settings.key_source()).verify(stranger.token("eve"))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        json.dumps({"issuer": ISSUER, "audience": AUDIENCE}),
        json.dumps(
            {
                "issuer": "http://insecure",
                "audience": AUDIENCE,
                "jwks": {"keys": [{"kid": "k", "kty": "RSA", "n": "x", "e": "AQAB"}]},
            }
        ),
        json.dumps({"issuer": ISSUER, "audience": AUDIENCE, "jwks": {"keys": [{"kid": "k"}]}}),
    ],
    ids=["not-json", "array", "no-keys", "http-issuer", "keys-without-n-e"],
)
def test_malformed_settings_are_refused_naming_their_source(text):
    with pytest.raises(TokenSettingsError, match="SSM parameter /aviary"):
        parse_token_settings(text, source=f"SSM parameter {naming.TOKEN_SETTINGS_PARAMETER}")


def _settings_of(*issuers: TokenIssuer, issuer_url: str = ISSUER) -> TokenSettings:
    keys = [json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(i.public_key)) | {"kid": i.key_id} for i in issuers]
    return TokenSettings(issuer=issuer_url, audience=AUDIENCE, jwks={"keys": keys})


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _source(published: list[TokenSettings], clock: _Clock, *, background: list | None = None, **kwargs):
    """A source whose 'SSM' is the last element of `published`; reloads run at once unless
    `background` collects them to run later."""
    reads = []

    def reload() -> TokenSettings:
        reads.append(clock.now)
        return published[-1]

    run = background.append if background is not None else (lambda work: work())
    source = ReloadingKeySource(published[0], reload, clock=clock, run_in_background=run, **kwargs)
    return source, reads


def test_a_rotated_key_is_found_by_re_reading_the_settings(issuer):
    rotated = TokenIssuer(key_id="rotated-key")
    published, clock = [_settings_of(issuer)], _Clock()
    source, reads = _source(published, clock)
    verifier = TokenVerifier(ISSUER, AUDIENCE, source)
    assert verifier.verify(issuer.token("alice")).user_id == "sub-alice"
    assert reads == []  # a known key asks nothing
    published.append(_settings_of(issuer, rotated))  # the hourly publisher copied the new key
    assert verifier.verify(rotated.token("bob")).user_id == "sub-bob"
    assert reads == [1000.0]


def test_unknown_keys_re_read_the_settings_at_most_once_per_interval(issuer):
    published, clock = [_settings_of(issuer)], _Clock()
    source, reads = _source(published, clock, recheck_seconds=30)
    for kid in ("forged-1", "forged-2", "forged-3"):
        with pytest.raises(LookupError):
            source(kid)
    assert reads == [1000.0]
    clock.now += 29
    with pytest.raises(LookupError):
        source("forged-4")
    clock.now += 1
    with pytest.raises(LookupError):
        source("forged-5")
    assert reads == [1000.0, 1030.0]


def test_a_request_during_the_background_re_read_is_asked_to_retry(issuer):
    published, clock, pending = [_settings_of(issuer)], _Clock(), []
    source, reads = _source(published, clock, background=pending)
    rotated = TokenIssuer(key_id="rotated-key")
    published.append(_settings_of(rotated))
    with pytest.raises(ServiceUnavailable):
        source("rotated-key")
    with pytest.raises(ServiceUnavailable):  # still re-reading: no second read is started
        source("rotated-key")
    assert len(pending) == 1 and reads == []
    pending.pop()()
    assert source("rotated-key") is not None


def test_a_failed_re_read_keeps_the_keys_held(issuer):
    clock = _Clock()

    def unreachable() -> TokenSettings:
        raise TokenSettingsError("SSM unreachable and no copy saved")

    source = ReloadingKeySource(
        _settings_of(issuer), unreachable, clock=clock, run_in_background=lambda work: work()
    )
    with pytest.raises(LookupError):
        source("rotated-key")
    assert source(issuer.key_id) is not None


def test_a_re_read_carries_a_new_issuer_to_the_verifier(issuer):
    new_issuer = "https://issuer-cognito-idp.us-east-1.amazonaws.com/us-east-1_Test"
    rotated = TokenIssuer(key_id="rotated-key")
    published, clock = [_settings_of(issuer)], _Clock()
    verifier = TokenVerifier(ISSUER, AUDIENCE, lambda _kid: None)

    def follow(settings: TokenSettings) -> None:
        verifier.issuer, verifier.audience = settings.issuer, settings.audience

    verifier.key_source, _ = _source(published, clock, on_reload=follow)
    published.append(_settings_of(issuer, rotated, issuer_url=new_issuer))
    assert verifier.verify(rotated.token("carol", iss=new_issuer)).user_id == "sub-carol"
    assert verifier.issuer == new_issuer
