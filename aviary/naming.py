"""Physical names that another region (or the local runtime) must know without a lookup.

Everything else is named by CloudFormation. These are derived here and nowhere else,
because cross-region stack references are fragile (aws/aws-cdk#34813).
"""

from __future__ import annotations

from aviary.schema import TableSchema

PREFIX = "aviary"


def table_name(schema: TableSchema) -> str:
    """A source-of-truth table has the same name in every region (a global table's replicas must)."""
    return f"{PREFIX}-{schema.role}"


def media_bucket_name(account: str, region: str) -> str:
    """Replication rules in every other region point at this bucket by name."""
    return f"{PREFIX}-media-{account}-{region}"


# Aliases are regional, so every region's media key can carry the same one; replication asks
# KMS in each region for the key behind it at deploy time (its key ID is not knowable at synth).
MEDIA_KEY_ALIAS = f"alias/{PREFIX}-media"


# SSM parameters. The primary region publishes where its user pool is; every region holds
# the token settings (issuer, audience, signing keys) its hosts verify tokens with, so a
# host never needs the internet nor another region to check a token.
USER_POOL_PARAMETER = f"/{PREFIX}/identity/user-pool"
TOKEN_SETTINGS_PARAMETER = f"/{PREFIX}/identity/token-settings"
