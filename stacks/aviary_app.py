"""Composes every region's stacks from one DeploymentConfig."""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import App, Environment, Tags

from stacks.config import DeploymentConfig
from stacks.data_stack import RegionalDataStack
from stacks.media_delivery_stack import CLOUDFRONT_REGION, MediaDeliveryStack
from stacks.names import stack_name
from stacks.replication_stack import MediaReplicationStack
from stacks.service_stack import RegionalServiceStack


@dataclass
class RegionStacks:
    data: RegionalDataStack
    service: RegionalServiceStack
    replication: MediaReplicationStack | None = None


@dataclass
class AviaryStacks:
    by_region: dict[str, RegionStacks] = field(default_factory=dict)
    media_delivery: MediaDeliveryStack | None = None


def region_cidr(index: int) -> str:
    """Distinct per region, so the VPCs can be peered later without renumbering."""
    return f"10.{10 + index}.0.0/16"


def build_app(app: App, config: DeploymentConfig) -> AviaryStacks:
    stacks = AviaryStacks()
    for index, region in enumerate(config.regions):
        env = Environment(account=config.account, region=region.name)
        data = RegionalDataStack(
            app,
            stack_name("Data", region.name),
            config=config,
            region=region.name,
            env=env,
            description=f"Aviary stateful data in {region.name}: tables and media (RETAIN)",
        )
        service = RegionalServiceStack(
            app,
            stack_name("Service", region.name),
            config=config,
            region=region,
            cidr=region_cidr(index),
            data=data,
            env=env,
            description=f"Aviary stateless services in {region.name}: network, functions, hosts",
        )
        service.add_stack_dependency(data, "functions and hosts use this region's tables and media")
        if region.name != config.primary_region:
            service.add_stack_dependency(
                stacks.by_region[config.primary_region].data,
                "the primary region's data stack writes this region's copy of where the user pool is",
            )
        stacks.by_region[region.name] = RegionStacks(data=data, service=service)

    # moto neither replicates S3 nor runs the custom resource that configures it: in `local`
    # the local runtime copies media between regions instead.
    if not config.is_local:
        for region in config.region_names:
            replication = MediaReplicationStack(
                app,
                stack_name("MediaReplication", region),
                config=config,
                region=region,
                env=Environment(account=config.account, region=region),
                description=f"Aviary media replication from {region} to every other region",
            )
            for other in stacks.by_region.values():
                replication.add_stack_dependency(
                    other.data, "S3 rejects a replication rule whose destination bucket does not exist yet"
                )
            stacks.by_region[region].replication = replication

        # moto has no CloudFront: in `local` the local runtime serves media URLs from the buckets.
        stacks.media_delivery = MediaDeliveryStack(
            app,
            stack_name("MediaDelivery", CLOUDFRONT_REGION),
            config=config,
            env=Environment(account=config.account, region=CLOUDFRONT_REGION),
            description=f"Aviary media delivery: {config.media_name} over two regions' media buckets",
        )
        for region in config.region_names[:2]:
            stacks.media_delivery.add_stack_dependency(
                stacks.by_region[region].data,
                "its origins' bucket and key policies let CloudFront read media",
            )

    # Tags are for cost allocation in real AWS. moto 5.2.5's CloudFormation misreads the tags of
    # SSM parameters (a map) and KMS keys (Key/Value) and fails the stack, so `local` has none.
    if not config.is_local:
        Tags.of(app).add("application", "aviary")
        Tags.of(app).add("stage", config.stage.value)
    return stacks
