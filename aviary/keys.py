"""How items are keyed inside Aviary's tables: the contract between writers and readers.

The write path (handlers, fan-out) writes these shapes and the read path (timeline hosts)
reads them; both import the builders here instead of formatting keys themselves.
"""

from __future__ import annotations

# Social graph table (pk, sk). Users are their IDs (the token's sub), never a handle. A follow is
# stored twice, once from each side, so that both "whom do I follow" and "who follows me" are
# single-partition queries.
USER_PREFIX = "USER#"
FOLLOWS_PREFIX = "FOLLOWS#"
FOLLOWER_PREFIX = "FOLLOWER#"


def user_pk(user_id: str) -> str:
    return f"{USER_PREFIX}{user_id}"


def follows_sk(followee: str) -> str:
    return f"{FOLLOWS_PREFIX}{followee}"


def follower_sk(follower: str) -> str:
    return f"{FOLLOWER_PREFIX}{follower}"


# Likes hang off the tweet: one item per (tweet, user), so liking twice changes nothing. A like never
# writes the tweet item itself: with last-writer-wins replication, a like racing a delete could
# otherwise bring it back. Likes and followers are counted per region in the counts table.
TWEET_PREFIX = "TWEET#"
LIKE_PREFIX = "LIKE#"
# A user's retweet of a tweet is unique: this marker item holds the retweet's own tweet ID.
RETWEET_PREFIX = "RETWEET#"


def tweet_pk(tweet_id: str) -> str:
    return f"{TWEET_PREFIX}{tweet_id}"


def like_sk(user_id: str) -> str:
    return f"{LIKE_PREFIX}{user_id}"


def retweet_sk(tweet_id: str) -> str:
    return f"{RETWEET_PREFIX}{tweet_id}"


def user_id_from_sk(sk: str) -> str:
    """The user ID at the end of a FOLLOWS#/FOLLOWER# sort key."""
    return sk.split("#", 1)[1]


# Timelines table (user_id, entry_key). Tweet IDs are ULIDs and created_at is a fixed-width
# UTC timestamp, so the key sorts by time and is the same however often an entry is written:
# a redelivered stream record rewrites the same item instead of adding a duplicate.
def timeline_entry_key(created_at: str, tweet_id: str) -> str:
    return f"{created_at}#{tweet_id}"


def tweet_id_from_entry_key(entry_key: str) -> str:
    return entry_key.rsplit("#", 1)[1]


# Attributes copied onto a timeline entry so that a timeline read is one query.
TIMELINE_ENTRY_ATTRIBUTES = (
    "tweet_id",
    "author_id",
    "created_at",
    "text",
    "reply_to",
    "retweet_of",
    "media_ids",
    "media_versions",  # each media ID's accepted object version, which its URL pins
    "original",  # a retweet's original as it was fanned out (the tweet item itself holds no copy)
)


# Idempotency table (id): one record per (operation, caller, client key), so two users may
# happen to pick the same key without colliding.
def idempotency_id(operation: str, user_id: str, key: str) -> str:
    return f"{operation}#{user_id}#{key}"


# Media bucket: objects live under their owner, so a key alone says whose upload it is.
MEDIA_KEY_PREFIX = "media/"


def media_object_key(owner: str, media_id: str) -> str:
    return f"{MEDIA_KEY_PREFIX}{owner}/{media_id}"
