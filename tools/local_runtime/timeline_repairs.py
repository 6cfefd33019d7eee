"""Timeline repair in the local stage: on demand (`make repair-local USER=alice`) and after a region
failure, for the users whose follows or timelines changed meanwhile (the replication notes them).

Each region's repair runs the prod function's code (aviary.timeline_repair) with the settings that
region's functions were deployed with, against that region's tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aviary import naming
from aviary.followers import FollowerDirectory
from aviary.keys import FOLLOWS_PREFIX, USER_PREFIX
from aviary.schema import SOCIAL_GRAPH, TWEETS
from aviary.timeline_repair import RepairResult, TimelineRepair
from aviary.timeline_settings import TimelineSettings
from tools.local_aws.event_sources import Checkpoints, records_after
from tools.local_runtime.deployment import STREAM_CONSUMERS, read_deployment

ClientFor = Callable[[str, str], Any]  # (service, region) -> boto3 client
AUTHOR_MARK = "author:"  # an owed repair of everyone an author's tweets reach, not of one user


def settings_of(region: str, client_for: ClientFor) -> TimelineSettings:
    """What the region's functions were deployed with."""
    return read_deployment(region, client_for("lambda", region)).timeline_settings()


def touched_by(table: str, keys: dict[str, Any], image: dict[str, Any] | None) -> str | None:
    """Whose timeline a change to a source item may change: a follow edge's follower, or a tweet's
    author's audience (marked, resolved per region when repaired); None for anything else."""
    if table == naming.table_name(SOCIAL_GRAPH):
        pk, sk = keys.get("pk", {}).get("S", ""), keys.get("sk", {}).get("S", "")
        if pk.startswith(USER_PREFIX) and sk.startswith(FOLLOWS_PREFIX):
            return pk.removeprefix(USER_PREFIX)
    elif table == naming.table_name(TWEETS) and image is not None and "author_id" in image:
        return AUTHOR_MARK + image["author_id"]["S"]
    return None


def users_to_repair(owed: Iterable[str], regions: Iterable[str], client_for: ClientFor) -> list[str]:
    """The users behind owed marks: an author and, unless a celebrity (merged on read), their
    followers in any region."""
    users: set[str] = set()
    settings = {region: settings_of(region, client_for) for region in regions}
    for mark in owed:
        if not mark.startswith(AUTHOR_MARK):
            users.add(mark)
            continue
        author = mark.removeprefix(AUTHOR_MARK)
        users.add(author)
        for region, each in settings.items():
            dynamodb = client_for("dynamodb", region)
            directory = FollowerDirectory(dynamodb, each.social_graph_table, each.counts_table)
            if directory.follower_count(author) <= each.celebrity_threshold:
                users.update(directory.followers(author))
    return sorted(users)


def repair(region: str, users: Iterable[str], client_for: ClientFor) -> list[RepairResult]:
    timelines = TimelineRepair(client_for("dynamodb", region), settings_of(region, client_for))
    return [timelines.repair(user) for user in users]


def consumers_behind(region: str, state_dir: Any, client_for: ClientFor) -> list[str]:
    """The region's stream consumers that have records still to deliver."""
    dynamodb, streams = client_for("dynamodb", region), client_for("dynamodbstreams", region)
    consumed = Checkpoints(state_dir / region / "checkpoints.json")
    behind = []
    for name, (_handler, schema) in STREAM_CONSUMERS.items():
        stream = dynamodb.describe_table(TableName=naming.table_name(schema))["Table"]["LatestStreamArn"]
        if records_after(streams, stream, consumed.get(name), limit=1):
            behind.append(f"{region} {name}")
    return behind
