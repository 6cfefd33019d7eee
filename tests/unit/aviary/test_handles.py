"""The handle registry (aviary.handles): one holder per handle, one handle per user, claimed once.

The race between accounts runs on DynamoDB Local, which isolates transactions as DynamoDB does.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from moto import mock_aws

from aviary.clients import AWS_CONFIG
from aviary.errors import NotFound
from aviary.handles import Handles
from aviary.schema import SOCIAL_GRAPH
from tools.local_aws.tables import create_tables


@pytest.fixture
def handles():
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1", config=AWS_CONFIG)
        yield Handles(dynamodb, create_tables(dynamodb, (SOCIAL_GRAPH,))["social-graph"])


def test_a_claimed_handle_maps_both_ways(handles):
    assert handles.claim("id-alice", "alice")
    assert handles.user_id_of("alice") == "id-alice"
    assert handles.handle_of("id-alice") == "alice"


def test_claiming_again_is_true_and_writes_nothing_more(handles):
    assert handles.claim("id-alice", "alice")
    assert Handles(handles.dynamodb, handles.table).claim("id-alice", "alice")  # a fresh process
    assert handles.dynamodb.scan(TableName=handles.table)["Count"] == 2


def test_a_handle_another_user_holds_is_not_given(handles):
    assert handles.claim("id-alice", "alice")
    assert not handles.claim("id-second-account", "alice")
    assert handles.user_id_of("alice") == "id-alice"
    assert handles.handle_of("id-second-account") is None


def test_a_user_holds_one_handle_for_good(handles):
    assert handles.claim("id-alice", "alice")
    assert not handles.claim("id-alice", "alice2")
    with pytest.raises(NotFound) as missing:
        handles.user_id_of("alice2")
    assert missing.value.field == "handle"


def test_accounts_racing_for_one_handle_leave_exactly_one_holder(dynamodb_local):
    dynamodb = dynamodb_local.client()
    table = create_tables(dynamodb, (SOCIAL_GRAPH,))["social-graph"]
    accounts = [f"id-{n:02d}" for n in range(16)]

    def claim(account: str) -> bool:
        return Handles(dynamodb_local.client(), table).claim(account, "alice")

    with ThreadPoolExecutor(len(accounts)) as pool:
        won = [account for account, ok in zip(accounts, pool.map(claim, accounts), strict=True) if ok]

    assert len(won) == 1
    handles = Handles(dynamodb, table)
    assert handles.user_id_of("alice") == won[0]
    assert [account for account in accounts if handles.handle_of(account) is not None] == won


def test_one_user_racing_for_two_handles_ends_with_one(dynamodb_local):
    dynamodb = dynamodb_local.client()
    table = create_tables(dynamodb, (SOCIAL_GRAPH,))["social-graph"]
    wanted = [f"name{n}" for n in range(8)]

    def claim(handle: str) -> bool:
        return Handles(dynamodb_local.client(), table).claim("id-alice", handle)

    with ThreadPoolExecutor(len(wanted)) as pool:
        won = [handle for handle, ok in zip(wanted, pool.map(claim, wanted), strict=True) if ok]

    handles = Handles(dynamodb, table)
    assert won == [handles.handle_of("id-alice")]
    held = [handle for handle in wanted if _holder(handles, handle) is not None]
    assert held == won


def _holder(handles: Handles, handle: str) -> str | None:
    try:
        return handles.user_id_of(handle)
    except NotFound:
        return None
