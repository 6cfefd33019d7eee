"""Per-region stateful stack: tables and media. Termination-protected; everything RETAINed."""

from __future__ import annotations

from aws_cdk import Stack
from constructs import Construct

from aviary.schema import COUNTS, TIMELINES
from stacks.components.derived_table import DerivedTable
from stacks.components.media_storage import MediaStorage
from stacks.components.source_tables import GlobalSourceTables, RegionalSourceTables
from stacks.components.user_directory import UserDirectory
from stacks.config import DeploymentConfig


class RegionalDataStack(Stack):
    """Holds what must outlive any deploy: source-of-truth tables, timelines and counts, media.

    In `prod` the global tables are declared in the primary region's stack only (their
    replicas are created from there); in `local` each region has its own copies.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, region: str, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, termination_protection=True, **kwargs)

        self.source_tables: GlobalSourceTables | RegionalSourceTables | None = None
        if config.is_local:
            self.source_tables = RegionalSourceTables(self, "SourceTables")
        elif region == config.primary_region:
            self.source_tables = GlobalSourceTables(
                self, "SourceTables", replica_regions=config.other_regions(region)
            )

        self.users: UserDirectory | None = None
        if region == config.primary_region:
            others = config.other_regions(region)
            self.users = UserDirectory(
                self,
                "Users",
                region=region,
                other_regions=others,
                # Cognito allows one replica per pool: the first other region holds it. moto cannot
                # replicate a pool, so the local stage has none.
                replica_region=None if config.is_local or not others else others[0],
                log_retention_days=config.log_retention_days,
            )

        self.timelines = DerivedTable(self, "Timelines", schema=TIMELINES)
        self.counts = DerivedTable(self, "Counts", schema=COUNTS)
        self.media = MediaStorage(
            self,
            "Media",
            account=config.account,
            region=region,
            noncurrent_version_days=config.media_noncurrent_version_days,
            access_log_days=config.log_retention_days,
        )
