"""Follow and unfollow against moto DynamoDB: both edges move together, once; and the follower counts
the region derives from the graph's stream (aviary.counts) follow the edges."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from aviary.counts import Counts
from aviary.errors import ValidationError
from aviary.keys import follower_sk, follows_sk, user_pk
from aviary.naming import table_name
from aviary.schema import COUNTS, SOCIAL_GRAPH
from aviary.social_graph import SocialGraph, cancellation_codes, only_condition_failures
from tests.graph_stream import count_graph_stream
from tools.local_aws.counting_client import CountingClient
from tools.local_aws.tables import create_tables

REGION = "us-east-1"
TABLE = table_name(SOCIAL_GRAPH)


def new_table() -> Any:
    """A client over fresh social-graph and counts tables; call inside mock_aws."""
    client = boto3.client("dynamodb", region_name=REGION, config=AWS_CONFIG)
    create_tables(client, [SOCIAL_GRAPH, COUNTS])
    return client


@pytest.fixture
def dynamodb():
    with mock_aws():
        yield new_table()


def items(dynamodb: Any) -> list[dict[str, Any]]:
    found = dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return sorted(found, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def item(dynamodb: Any, pk: str, sk: str) -> dict[str, Any] | None:
    key = {"pk": {"S": pk}, "sk": {"S": sk}}
    return dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item")


def followers(dynamodb: Any, handle: str) -> int:
    """`handle`'s follower count once the graph's whole stream has been counted (as the region's
    graph-stream consumer would), whatever was counted before: counting is idempotent."""
    count_graph_stream(dynamodb, TABLE, table_name(COUNTS), REGION)
    return Counts(dynamodb, table_name(COUNTS)).followers(handle)


def cancelled(*codes: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
            "CancellationReasons": [{"Code": code} for code in codes],
        },
        "TransactWriteItems",
    )


class FailingClient:
    """A client whose transactions always fail with `error`."""

    def __init__(self, error: ClientError) -> None:
        self.error = error

    def transact_write_items(self, **_: Any) -> None:
        raise self.error


# -- follow ----------------------------------------------------------------------------------------


def test_follow_writes_both_edges_which_count_the_follower(dynamodb):
    graph = SocialGraph(dynamodb, TABLE)

    assert graph.follow("alice", "bob") is True

    assert item(dynamodb, user_pk("alice"), follows_sk("bob")) is not None
    assert item(dynamodb, user_pk("bob"), follower_sk("alice")) is not None
    assert followers(dynamodb, "bob") == 1
    assert followers(dynamodb, "alice") == 0  # following someone does not touch your own count
    assert graph.is_following("alice", "bob") is True
    assert graph.is_following("bob", "alice") is False


def test_follow_is_one_transaction(dynamodb):
    counting = CountingClient(dynamodb)

    SocialGraph(counting, TABLE).follow("alice", "bob")

    assert counting.calls == ["transact_write_items"]


def test_following_twice_changes_nothing(dynamodb):
    graph = SocialGraph(dynamodb, TABLE)
    graph.follow("alice", "bob")
    before = items(dynamodb)

    assert graph.follow("alice", "bob") is False

    assert items(dynamodb) == before
    assert followers(dynamodb, "bob") == 1


def test_each_follower_counts_once(dynamodb):
    graph = SocialGraph(dynamodb, TABLE)
    for follower in ("alice", "carol", "dave", "alice"):
        graph.follow(follower, "bob")

    assert followers(dynamodb, "bob") == 3


@pytest.mark.parametrize("operation", ["follow", "unfollow"])
def test_following_yourself_is_rejected_and_writes_nothing(dynamodb, operation):
    graph = SocialGraph(dynamodb, TABLE)

    with pytest.raises(ValidationError) as caught:
        getattr(graph, operation)("alice", "alice")

    assert caught.value.field == "handle"
    assert "yourself" in caught.value.message
    assert items(dynamodb) == []


# -- unfollow --------------------------------------------------------------------------------------


def test_unfollow_removes_both_edges_and_so_the_count(dynamodb):
    graph = SocialGraph(dynamodb, TABLE)
    graph.follow("alice", "bob")

    assert graph.unfollow("alice", "bob") is True

    assert item(dynamodb, user_pk("alice"), follows_sk("bob")) is None
    assert item(dynamodb, user_pk("bob"), follower_sk("alice")) is None
    assert followers(dynamodb, "bob") == 0
    assert graph.is_following("alice", "bob") is False


def test_unfollowing_twice_changes_nothing(dynamodb):
    graph = SocialGraph(dynamodb, TABLE)
    graph.follow("alice", "bob")
    graph.unfollow("alice", "bob")
    before = items(dynamodb)

    assert graph.unfollow("alice", "bob") is False

    assert items(dynamodb) == before
    assert followers(dynamodb, "bob") == 0


def test_unfollowing_someone_never_followed_writes_nothing(dynamodb):
    graph = SocialGraph(dynamodb, TABLE)

    assert graph.unfollow("alice", "bob") is False

    assert items(dynamodb) == []
    assert followers(dynamodb, "bob") == 0


def test_follow_again_after_unfollow(dynamodb):
    graph = SocialGraph(dynamodb, TABLE)
    graph.follow("alice", "bob")
    graph.unfollow("alice", "bob")

    assert graph.follow("alice", "bob") is True
    assert followers(dynamodb, "bob") == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.booleans(), st.sampled_from(["alice", "carol", "dave"]), st.sampled_from(["bob", "erin"])
        ),
        max_size=12,
    )
)
def test_any_sequence_keeps_edges_and_counts_in_step(operations):
    with mock_aws():
        dynamodb = new_table()
        graph = SocialGraph(dynamodb, TABLE)
        model: set[tuple[str, str]] = set()
        for follow, follower, followee in operations:
            edge = (follower, followee)
            if follow:
                assert graph.follow(follower, followee) is (edge not in model)
                model.add(edge)
            else:
                assert graph.unfollow(follower, followee) is (edge in model)
                model.discard(edge)

        for followee in ("bob", "erin"):
            expected = sum(1 for _, target in model if target == followee)
            assert followers(dynamodb, followee) == expected
            for follower in ("alice", "carol", "dave"):
                following = (follower, followee) in model
                assert graph.is_following(follower, followee) is following
                assert (item(dynamodb, user_pk(followee), follower_sk(follower)) is not None) is following


# -- errors other than "already so" ----------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        cancelled("TransactionConflict", "None"),
        cancelled("None", "ConditionalCheckFailed"),
        cancelled("ConditionalCheckFailed", "ThrottlingError"),
        ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
            "TransactWriteItems",
        ),
    ],
)
def test_other_dynamodb_failures_propagate(error):
    graph = SocialGraph(FailingClient(error), TABLE)

    with pytest.raises(ClientError) as caught:
        graph.follow("alice", "bob")

    assert caught.value is error


def test_cancellation_codes_read_the_reasons():
    assert cancellation_codes(cancelled("ConditionalCheckFailed", "None")) == [
        "ConditionalCheckFailed",
        "None",
    ]
    other = ClientError({"Error": {"Code": "ValidationException", "Message": "bad"}}, "TransactWriteItems")
    assert cancellation_codes(other) is None


@pytest.mark.parametrize(
    ("codes", "positions", "expected"),
    [
        (["ConditionalCheckFailed", "None"], (0,), True),
        (["None", "ConditionalCheckFailed"], (0,), False),
        (["ConditionalCheckFailed", "ConditionalCheckFailed"], (0,), False),
        (["ConditionalCheckFailed", "ConditionalCheckFailed"], (0, 1), True),
        (["TransactionConflict", "None"], (0,), False),
        (["None", "None"], (0,), False),
        ([], (0,), False),
    ],
)
def test_only_condition_failures(codes, positions, expected):
    assert only_condition_failures(codes, *positions) is expected
