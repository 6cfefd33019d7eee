"""Where the local stage lives: the moto endpoint, the ports, the state directory, the regions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stacks.config import DeploymentConfig, load_config, project_context

PROJECT = Path(__file__).resolve().parents[2]
LOCAL_CONTEXT = {"stage": "local"}
# Dummy credentials: moto accepts any, and nothing here can reach real AWS.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True)
class LocalSettings:
    config: DeploymentConfig
    state_dir: Path
    moto_port: int = 5000
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

    def api_port(self, region: str) -> int:
        return self.first_api_port + self.regions.index(region)

    def api_url(self, region: str) -> str:
        return f"http://{self.host}:{self.api_port(region)}"

    @property
    def front_door_url(self) -> str:
        return f"http://{self.host}:{self.front_door_port}"

    def aws_environment(self, region: str | None = None) -> dict[str, str]:
        """Variables that point boto3 and the CDK CLI at moto with dummy credentials."""
        environment = {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": region or self.primary_region,
            # boto3 would otherwise send streams calls to account-based hosts that moto never sees.
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        if region:
            environment["AWS_REGION"] = region
        return environment

    def down_marker(self, region: str) -> Path:
        """Present while `make region-down` holds `region` down."""
        return self.state_dir / "down" / region

    def is_down(self, region: str) -> bool:
        return self.down_marker(region).exists()


def load_local_settings(state_dir: Path | None = None) -> LocalSettings:
    config = load_config(project_context(PROJECT, LOCAL_CONTEXT).get)
    return LocalSettings(config=config, state_dir=state_dir or PROJECT / ".local")
