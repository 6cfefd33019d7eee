"""Per-region stateless stack: the network now; the write-path functions and the read fleet join it."""

from __future__ import annotations

from aws_cdk import Stack
from constructs import Construct

from stacks.components.network import Network
from stacks.config import DeploymentConfig, RegionConfig


class RegionalServiceStack(Stack):
    """Everything in here can be destroyed and redeployed without losing data."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        region: RegionConfig,
        cidr: str,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.network = Network(
            self,
            "Network",
            cidr=cidr,
            availability_zones=region.availability_zones,
            flow_log_retention_days=config.log_retention_days,
            restrict_default_security_group=not config.is_local,
        )
