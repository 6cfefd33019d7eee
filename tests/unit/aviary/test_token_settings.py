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
from aviary.errors import Unauthorized
from aviary.token_settings import TokenSettingsError, load_token_settings, parse_token_settings
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
