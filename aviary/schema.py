"""Key schemas and fixed names of Aviary's DynamoDB tables.

The CDK stacks, the runtime code and the moto test fixtures all build tables from
these constants, so a key renamed here changes everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyAttribute:
    name: str
    type: str = "S"  # DynamoDB scalar type: S, N or B


@dataclass(frozen=True)
class IndexSchema:
    name: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None


@dataclass(frozen=True)
class TableSchema:
    """One table's logical role, its key schema, its secondary indexes and its TTL attribute."""

    role: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None
    indexes: tuple[IndexSchema, ...] = ()
    ttl_attribute: str | None = None
    streamed: bool = False  # a stream of new and old images feeds consumers (fan-out)
    replicated: bool = True  # source of truth (global table) or derived per-region data


TWEETS = TableSchema(
    role="tweets",
    partition_key=KeyAttribute("tweet_id"),
    indexes=(
        # A user's own tweets, newest first: read-time merge of celebrity authors.
        IndexSchema("by_author", KeyAttribute("author_id"), KeyAttribute("created_at")),
        # The retweets of a tweet (only retweets carry retweet_of): they go when it is deleted.
        IndexSchema("by_original", KeyAttribute("retweet_of"), KeyAttribute("created_at")),
    ),
    streamed=True,
)

# Follows and likes in one table: pk/sk hold typed keys such as USER#alice / FOLLOWS#bob. Its stream
# feeds the counts (likes, followers) each region derives from the edges it holds.
SOCIAL_GRAPH = TableSchema(
    role="social-graph",
    partition_key=KeyAttribute("pk"),
    sort_key=KeyAttribute("sk"),
    streamed=True,
)

# Attribute names match Powertools' DynamoDBPersistenceLayer defaults. Its stream shows when a record
# written in one region was replaced by another region's for the same request (a duplicate post).
IDEMPOTENCY = TableSchema(
    role="idempotency",
    partition_key=KeyAttribute("id"),
    ttl_attribute="expiration",
    streamed=True,
)

# Uploaded media: who owns it, what it claimed to be, and what the processor found.
MEDIA = TableSchema(
    role="media",
    partition_key=KeyAttribute("media_id"),
)

# Derived data: each region materialises its own from its stream, so it is not replicated.
TIMELINES = TableSchema(
    role="timelines",
    partition_key=KeyAttribute("user_id"),
    sort_key=KeyAttribute("entry_key"),
    ttl_attribute="expires_at",
    replicated=False,
)

# Derived data: how many likes a tweet has and how many followers a user has, counted by each region
# from the edges in its own copy of the social graph (aviary.counts). Counters in a global table
# would lose increments to last-writer-wins replication; edges do not, and a count of them cannot.
COUNTS = TableSchema(
    role="counts",
    partition_key=KeyAttribute("pk"),
    sort_key=KeyAttribute("sk"),
    replicated=False,
)

SOURCE_OF_TRUTH_TABLES = (TWEETS, SOCIAL_GRAPH, IDEMPOTENCY, MEDIA)
DERIVED_TABLES = (TIMELINES, COUNTS)
ALL_TABLES = (*SOURCE_OF_TRUTH_TABLES, *DERIVED_TABLES)
