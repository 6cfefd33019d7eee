"""Tables built from aviary.schema, so tests use exactly the keys the stacks deploy (the local-AWS
harness builds them; the drills use the same)."""

from tools.local_aws.tables import create_table, create_tables

__all__ = ["create_table", "create_tables"]
