"""Where the local stage lives: the moto endpoint, the ports, the state directory, the regions."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from stacks.config import DeploymentConfig, load_config, project_context

PROJECT = Path(__file__).resolve().parents[2]
LOCAL_CONTEXT = {"stage": "local"}
# Dummy credentials: moto accepts any, and nothing here can reach real AWS.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
DYNAMODB_SERVICES = ("dynamodb", "dynamodbstreams")


@dataclass(frozen=True)
class LocalSettings:
    config: DeploymentConfig
    state_dir: Path
    moto_port: int = 5000
    dynamodb_port: int = 8000
    front_door_port: int = 8080
    first_api_port: int = 8081
    host: str = "127.0.0.1"

    @property
    def regions(self) -> tuple[str, ...]:
        return self.config.region_names

    @property
    def primary_region(self) -> str:
        return self.config.primary_region

    @property
    def endpoint(self) -> str:
        # The literal host "localhost": moto resolves the path-style template URLs cdk deploy
        # uploads only when they name it.
        return f"http://localhost:{self.moto_port}"

    @property
    def dynamodb_endpoint(self) -> str:
        """DynamoDB Local: the local stage's DynamoDB and DynamoDB Streams (moto serves the rest)."""
        return f"http://{self.host}:{self.dynamodb_port}"

    def endpoint_for(self, service: str) -> str:
        return self.dynamodb_endpoint if service in DYNAMODB_SERVICES else self.endpoint

    def api_port(self, region: str) -> int:
        return self.first_api_port + self.regions.index(region)

    def api_url(self, region: str) -> str:
        return f"http://{self.host}:{self.api_port(region)}"

    @property
    def front_door_url(self) -> str:
        return f"http://{self.host}:{self.front_door_port}"

    @property
    def media_base_url(self) -> str:
        """Media URLs start here: the front door serves them (media_delivery.py), as CloudFront
        serves media.<domainName> in prod."""
        return self.front_door_url

    def aws_environment(self, region: str | None = None) -> dict[str, str]:
        """Variables that point boto3 and the CDK CLI at moto with dummy credentials, and boto3's
        DynamoDB and DynamoDB Streams clients at DynamoDB Local (no code names an endpoint)."""
        environment = {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.dynamodb_endpoint,
            "AWS_DEFAULT_REGION": region or self.primary_region,
            # boto3 would otherwise send streams calls to account-based hosts that moto never sees.
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        if region:
            environment["AWS_REGION"] = region
        return environment

    def runtime_environment(self, region: str | None = None) -> dict[str, str]:
        """What a runtime process needs: the AWS variables, and these settings themselves."""
        return {
            **self.aws_environment(region),
            "AVIARY_LOCAL_STATE_DIR": str(self.state_dir),
            "AVIARY_LOCAL_MOTO_PORT": str(self.moto_port),
            "AVIARY_LOCAL_DYNAMODB_PORT": str(self.dynamodb_port),
            "AVIARY_LOCAL_FRONT_DOOR_PORT": str(self.front_door_port),
            "AVIARY_LOCAL_FIRST_API_PORT": str(self.first_api_port),
        }

    def down_marker(self, region: str) -> Path:
        """Present while `make region-down` holds `region` down."""
        return self.state_dir / "down" / region

    def is_down(self, region: str) -> bool:
        return self.down_marker(region).exists()


def load_local_settings(environ: Mapping[str, str] | None = None) -> LocalSettings:
    """The settings, with ports and state directory movable by AVIARY_LOCAL_* variables (a test
    runs a second stage beside a developer's own this way; child processes inherit them)."""
    environ = os.environ if environ is None else environ
    config = load_config(project_context(PROJECT, LOCAL_CONTEXT).get)
    defaults = LocalSettings(config=config, state_dir=PROJECT / ".local")

    def port(name: str, default: int) -> int:
        text = environ.get(name, "").strip()
        if not text:
            return default
        if not (text.isdigit() and 1024 <= int(text) <= 65535):
            raise ValueError(f"{name} must be a port number from 1024 to 65535, not {text!r}.")
        return int(text)

    return replace(
        defaults,
        state_dir=Path(environ.get("AVIARY_LOCAL_STATE_DIR") or defaults.state_dir),
        moto_port=port("AVIARY_LOCAL_MOTO_PORT", defaults.moto_port),
        dynamodb_port=port("AVIARY_LOCAL_DYNAMODB_PORT", defaults.dynamodb_port),
        front_door_port=port("AVIARY_LOCAL_FRONT_DOOR_PORT", defaults.front_door_port),
        first_api_port=port("AVIARY_LOCAL_FIRST_API_PORT", defaults.first_api_port),
    )
