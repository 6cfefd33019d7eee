"""The source-of-truth tables: tweets, the social graph and idempotency records."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from aviary import naming
from aviary.schema import SOURCE_OF_TRUTH_TABLES, TableSchema
from stacks.components.table_schema import add_local_indexes, global_table, local_table


class GlobalSourceTables(Construct):
    """`prod`: one global table per schema, declared once, with a replica in every other region.

    Replication is last-writer-wins, which the design accepts (relaxed consistency).
    """

    def __init__(self, scope: Construct, construct_id: str, *, replica_regions: tuple[str, ...]) -> None:
        super().__init__(scope, construct_id)
        self.tables: dict[str, dynamodb.TableV2] = {
            schema.role: dynamodb.TableV2(
                self,
                _construct_id(schema),
                removal_policy=RemovalPolicy.RETAIN,
                **global_table(schema, table_name=naming.table_name(schema), replica_regions=replica_regions),
            )
            for schema in SOURCE_OF_TRUTH_TABLES
        }


class RegionalSourceTables(Construct):
    """`local`: the same tables, one copy per region, because moto cannot create global tables.

    The local runtime copies writes between regions in their place, reading every table's stream
    as global tables replication does.
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.tables: dict[str, dynamodb.Table] = {}
        for schema in SOURCE_OF_TRUTH_TABLES:
            table = dynamodb.Table(
                self,
                _construct_id(schema),
                removal_policy=RemovalPolicy.RETAIN,
                **local_table(schema, table_name=naming.table_name(schema), stream_every_change=True),
            )
            add_local_indexes(table, schema)
            self.tables[schema.role] = table


def _construct_id(schema: TableSchema) -> str:
    return "".join(part.capitalize() for part in schema.role.split("-"))
