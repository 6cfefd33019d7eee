"""End to end: `make deploy-local`, the README's walk-through over HTTP (with a region failure and
recovery), API Gateway's own refusals, convergence of the regions, then teardown.

One deploy serves every test here: pytest-xdist runs a file's tests on one worker (--dist
loadfile), and the fixtures are session-scoped so the stage stays up however that worker orders
its files.
The stage gets its own ports and state directory (tests/e2e/local_stage.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.cloud_assembly import PROJECT
from tests.e2e.local_stage import LocalStageUnderTest, walkthrough_script
from tools.drills import region_drill
from tools.drills.region_drill import request
from tools.local_runtime.control import LocalStage


@pytest.fixture(scope="session")
def stage(tmp_path_factory) -> LocalStageUnderTest:
    under_test = LocalStageUnderTest(tmp_path_factory.mktemp("local-stage"))
    taken = under_test.ports_in_use()
    assert not taken, f"ports {taken} are in use: stop whatever holds them to run the end-to-end tests"
    deployed = under_test.make("deploy-local")
    try:
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        yield under_test
    finally:
        stopped = under_test.make("stop-local", timeout=120)
        reset = under_test.make("reset-local", timeout=120)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        if deployed.returncode == 0:
            assert "moto" in stopped.stdout and "front-door" in stopped.stdout, stopped.stdout
        assert under_test.ports_in_use() == [], "make stop-local left something listening"
        assert reset.returncode == 0, reset.stdout + reset.stderr
        assert not under_test.state_dir.exists(), "make reset-local left the state directory"


@pytest.fixture(scope="session")
def walkthrough(stage) -> str:
    script = walkthrough_script((PROJECT / "README.md").read_text(), stage.settings)
    result = stage.bash(script)
    assert result.returncode == 0, f"walk-through failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _json_lines(output: str) -> list[dict[str, Any]]:
    """Every JSON object the walk-through printed, in order (curl's -i headers and make's lines skipped)."""
    found = []
    for line in output.splitlines():
        for text in re.findall(r"\{.*?\}(?=\{|$)", line) if line.startswith("{") else []:
            try:
                found.append(json.loads(text))
            except ValueError:
                continue
    return found


def _timelines(output: str) -> list[list[str]]:
    """The texts of each timeline page the walk-through printed, in order."""
    pages = []
    for line in output.splitlines():
        if line.startswith('{"items":'):
            pages.append([item["text"] for item in json.loads(line)["items"]])
    return pages


def test_deploy_prints_every_endpoint_and_each_region_answers(stage):
    status = stage.make("status-local", timeout=60)
    assert status.returncode == 0, status.stderr
    settings = stage.settings
    assert settings.front_door_url in status.stdout
    for region in settings.regions:
        assert f"{settings.api_url(region)}  (up, health 200)" in status.stdout


def test_walkthrough_follow_post_and_read_in_the_other_region(walkthrough):
    objects = _json_lines(walkthrough)
    assert {"handle": "alice", "following": True} in objects
    posted = [o for o in objects if o.get("author") == "alice"]
    assert [p["text"] for p in posted] == [
        "Hello from us-east-1",
        "A picture",
        "Posted while us-east-1 was down",
    ]
    # The first timeline read is bob's, in us-west-2, after the first post only.
    assert _timelines(walkthrough)[0] == ["Hello from us-east-1"]


def test_walkthrough_media_is_accepted_and_attached(walkthrough):
    picture = next(o for o in _json_lines(walkthrough) if o.get("text") == "A picture")
    assert len(picture["media_ids"]) == 1
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", picture["media_ids"][0])


def test_walkthrough_region_failure_fails_over_and_the_region_catches_up(walkthrough):
    # Read through the front door while us-east-1 was down: served by us-west-2, with the new post.
    assert re.search(r"^X-Aviary-Region: us-west-2\r?$", walkthrough, re.MULTILINE | re.IGNORECASE)
    during, after = _timelines(walkthrough)[1], _timelines(walkthrough)[2]
    expected = ["Posted while us-east-1 was down", "A picture", "Hello from us-east-1"]
    assert during == expected
    # Read in us-east-1 itself after region-up: it caught up on what was written while it was down.
    assert after == expected
    assert walkthrough.count("Caught up in") == 5


def test_regions_converge_item_for_item(stage, walkthrough):
    settled = stage.make("settle-local", timeout=120)
    assert settled.returncode == 0, settled.stderr
    local = LocalStage(stage.settings)
    assert local.source_items(local.settings.primary_region)["aviary-tweets"], "the walk-through wrote tweets"
    assert local.differences(list(local.settings.regions)) == []


def _request(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None):
    """(status, JSON body) of one request, by the drill's own client."""
    status, payload, _region = request(url, method, body, headers)
    return status, payload


@pytest.fixture(scope="session")
def alice_token(stage, walkthrough) -> str:
    result = stage.make("token", "USER=alice", timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_api_gateway_refusals_look_like_aws(stage, alice_token):
    settings = stage.settings
    api = settings.api_url(settings.primary_region)
    assert _request(f"{api}/tweets", "POST", b"{}") == (401, {"message": "Unauthorized"})
    bad_token = {"Authorization": "Bearer " + alice_token[:-4] + "AAAA"}
    assert _request(f"{api}/tweets", "POST", b"{}", bad_token) == (401, {"message": "Unauthorized"})
    assert _request(f"{api}/nowhere", headers={"Authorization": f"Bearer {alice_token}"}) == (
        404,
        {"message": "Not Found"},
    )


def test_bad_requests_get_the_handlers_4xx_errors_and_write_nothing(stage, alice_token):
    api = stage.settings.front_door_url
    auth = {"Authorization": f"Bearer {alice_token}", "Content-Type": "application/json"}
    status, body = _request(
        f"{api}/tweets", "POST", b'{"text": ""}', {**auth, "Idempotency-Key": "e2e-empty-1"}
    )
    assert status == 400 and body["error"]["field"] == "text"
    status, body = _request(f"{api}/tweets", "POST", b'{"text": "no key"}', auth)
    assert status == 400 and body["error"]["field"] == "Idempotency-Key"
    status, body = _request(f"{api}/users/alice/follow", "POST", None, auth)
    assert status == 400 and "yourself" in body["error"]["message"]
    status, body = _request(f"{api}/tweets/not-an-id", headers=auth)
    assert status == 400 and body["error"]["field"] == "id"
    # Nothing of these reached the tables: the same key with a valid body is a first post, not a replay.
    status, body = _request(
        f"{api}/tweets", "POST", b'{"text": "now valid"}', {**auth, "Idempotency-Key": "e2e-empty-1"}
    )
    assert status == 201 and body["text"] == "now valid"


def test_token_needs_a_valid_handle(stage):
    result = stage.make("token", "USER=not a handle!", timeout=120)
    assert result.returncode != 0
    assert "USER" in result.stderr


def test_region_drill_loses_nothing_and_doubles_nothing(stage, walkthrough):
    local = LocalStage(stage.settings)
    result = region_drill.run(local, posts_per_phase=10)
    assert (result.survived, result.lost, result.duplicated) == (30, 0, 0), result
    assert result.details["served by another region while down"] == 10
    assert result.details["source items that differ between regions"] == 0
    # Two failed checks a second apart, plus the time to notice: well under the 10 s it must stay below.
    assert 0 < result.details["failover seconds"] < 10
