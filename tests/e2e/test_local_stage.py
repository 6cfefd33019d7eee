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
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.cloud_assembly import PROJECT
from tests.e2e.concurrency import Call, Settled, at_once
from tests.e2e.local_stage import LocalStageUnderTest, walkthrough_script
from tools.drills import region_drill
from tools.local_runtime import identity
from tools.local_runtime.control import LocalStage
from tools.local_runtime.stage_http import request


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
    [followed] = [o for o in objects if o.get("handle") == "alice"]
    assert followed["following"] is True
    # Tweets name their author by user ID, the one the handle "alice" maps to.
    posted = [o for o in objects if o.get("author") == followed["user_id"]]
    assert [p["text"] for p in posted] == [
        "Hello from us-east-1",
        "A picture",
        "Posted while us-east-1 was down",
    ]
    # The first timeline read is bob's, in us-west-2, after the first post only.
    assert _timelines(walkthrough)[0] == ["Hello from us-east-1"]


# What the walk-through's printf writes to /tmp/aviary-demo.png and uploads.
DEMO_PICTURE = b"\x89PNG\r\n\x1a\n tiny demo image"


def test_walkthrough_media_is_accepted_and_attached(walkthrough):
    picture = next(o for o in _json_lines(walkthrough) if o.get("text") == "A picture")
    assert len(picture["media_ids"]) == 1
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", picture["media_ids"][0])


def test_a_posted_pictures_url_serves_the_uploaded_bytes_through_the_front_door(stage, walkthrough):
    picture = next(o for o in _json_lines(walkthrough) if o.get("text") == "A picture")
    [media_url] = picture["media_urls"]
    front = stage.settings.front_door_url
    prefix = f"{front}/media/{picture['author']}/{picture['media_ids'][0]}?versionId="
    assert media_url.startswith(prefix) and len(media_url) > len(prefix), media_url

    # Now, with every region up: us-east-1 serves the version it accepted.
    with urllib.request.urlopen(media_url, timeout=15) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/png"
        assert response.headers["X-Aviary-Region"] == stage.settings.primary_region
        assert response.read() == DEMO_PICTURE
    # While us-east-1 was down (the walk-through fetched it then): us-west-2's copy, same bytes.
    assert re.search(r"^200 from us-west-2$", walkthrough, re.MULTILINE), walkthrough
    assert "The same picture" in walkthrough
    # Timeline items show the same URL as the tweet, in both regions.
    pages = [json.loads(line) for line in walkthrough.splitlines() if line.startswith('{"items":')]
    shown = [item["media_urls"] for page in pages for item in page["items"] if item["text"] == "A picture"]
    assert shown == [[media_url], [media_url]]
    # Only accepted media is served: the same key at another version is not.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{prefix}not-the-accepted-version", timeout=15)
    assert refused.value.code == 404
    assert json.loads(refused.value.read())["error"]["code"] == "not_found"


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
    assert result.details["divergent timeline entries between regions"] == 0
    assert result.details["late follower's timeline, tweets missing"] == 0
    assert result.details["unfollower's timeline, author's entries left"] == 0
    # Two failed checks a second apart, plus the time to notice: well under the 10 s it must stay below.
    assert 0 < result.details["failover seconds"] < 10


# -- concurrency over HTTP, on DynamoDB Local: what every region holds once settled -----------------------


@pytest.fixture(scope="session")
def local(stage, walkthrough) -> LocalStage:
    return LocalStage(stage.settings)


@pytest.fixture(scope="session")
def tokens(local) -> dict[str, str]:
    users = ["cc_author", "cc_reader", "cc_poster", *(f"cc_fan{n}" for n in range(10))]
    return {user: local.token(user) for user in users}


@pytest.fixture(scope="session")
def ids(tokens) -> dict[str, str]:
    """Each user's ID (their tokens' sub), which every key holds, by username."""
    return {user: identity.caller_of(token).user_id for user, token in tokens.items()}


def settled(local: LocalStage) -> list[Settled]:
    local.settle(timeout_seconds=180)
    return [Settled(local, region) for region in local.settings.regions]


def test_concurrent_posts_beside_failing_transactions_are_all_stored_once_everywhere(local, tokens, ids):
    front = local.settings.front_door_url
    at_once(front, [Call("POST", "/users/cc_author/follow", tokens["cc_reader"])])
    [(status, doomed)] = at_once(
        front, [Call("POST", "/tweets", tokens["cc_author"], {"text": "doomed"}, "cc-doomed-1")]
    )
    assert status == 201
    at_once(front, [Call("DELETE", f"/tweets/{doomed['id']}", tokens["cc_author"])])

    posts = [
        Call("POST", "/tweets", tokens["cc_author"], {"text": f"burst {n}"}, f"cc-burst-{n:04d}")
        for n in range(40)
    ]
    likes = [Call("POST", f"/tweets/{doomed['id']}/like", tokens[f"cc_fan{n % 10}"]) for n in range(40)]
    answers = at_once(front, [call for pair in zip(posts, likes, strict=True) for call in pair])

    posted = [body["id"] for _status, body in answers[0::2]]
    assert [status for status, _ in answers[0::2]] == [201] * 40
    assert [status for status, _ in answers[1::2]] == [404] * 40  # the deleted tweet's transactions fail
    assert len(set(posted)) == 40
    for region in settled(local):
        live = {tid for tid, item in region.tweets(ids["cc_author"]).items() if not item["deleted"]["BOOL"]}
        assert set(posted) <= live, region.region
        timeline = region.timeline(ids["cc_reader"])
        assert sorted(tid for tid in timeline if tid in set(posted)) == sorted(posted), region.region
        assert doomed["id"] not in timeline and not region.likers(doomed["id"])


def test_racing_likes_and_unlikes_leave_counts_equal_to_the_likes_held_everywhere(local, tokens, ids):
    front = local.settings.front_door_url
    [(status, tweet)] = at_once(
        front, [Call("POST", "/tweets", tokens["cc_author"], {"text": "likeable"}, "cc-like-1")]
    )
    assert status == 201
    path = f"/tweets/{tweet['id']}/like"
    calls = [Call("POST", path, tokens["cc_fan0"]) for _ in range(30)]  # one user, thirty times at once
    for n in range(1, 10):
        calls += [Call("POST" if k % 2 == 0 else "DELETE", path, tokens[f"cc_fan{n}"]) for k in range(5)]
    answers = at_once(front, calls)

    assert all(status in (200, 503) for status, _ in answers), answers  # 503: a retry is asked for
    regions = settled(local)
    for region in regions:
        likers = region.likers(tweet["id"])
        assert ids["cc_fan0"] in likers
        assert region.like_count(tweet["id"]) == len(likers), region.region
    assert len({frozenset(region.likers(tweet["id"])) for region in regions}) == 1


def test_racing_follows_and_unfollows_leave_both_edges_and_the_count_in_step_everywhere(local, tokens, ids):
    front = local.settings.front_door_url
    calls = [Call("POST", "/users/cc_poster/follow", tokens["cc_fan0"]) for _ in range(20)]
    for n in range(1, 6):
        calls += [
            Call("POST" if k % 2 == 0 else "DELETE", "/users/cc_poster/follow", tokens[f"cc_fan{n}"])
            for k in range(6)
        ]
    answers = at_once(front, calls)

    assert all(status in (200, 503) for status, _ in answers), answers
    for region in settled(local):
        followers = region.followers(ids["cc_poster"])
        following = {ids[user] for user in tokens if ids["cc_poster"] in region.follows(ids[user])}
        assert followers == following and ids["cc_fan0"] in followers, region.region
        assert region.counts.followers(ids["cc_poster"]) == len(followers), region.region


def test_a_replay_and_a_conflict_between_posts_leave_exactly_the_accepted_tweets_everywhere(
    local, tokens, ids
):
    front = local.settings.front_door_url
    poster = tokens["cc_poster"]
    at_once(front, [Call("POST", "/users/cc_poster/follow", tokens["cc_reader"])])
    [(status, first)] = at_once(front, [Call("POST", "/tweets", poster, {"text": "first"}, "cc-replay-k1")])
    assert status == 201
    local.settle()
    [(conflict, _)] = at_once(
        front, [Call("POST", "/tweets", poster, {"text": "refused body"}, "cc-replay-k1")]
    )
    [(replay, again)] = at_once(front, [Call("POST", "/tweets", poster, {"text": "first"}, "cc-replay-k1")])
    [(status, second)] = at_once(front, [Call("POST", "/tweets", poster, {"text": "second"}, "cc-replay-k2")])

    assert (conflict, replay, again["id"], status) == (409, 201, first["id"], 201)
    for region in settled(local):
        live = {
            item["text"]["S"]: tid
            for tid, item in region.tweets(ids["cc_poster"]).items()
            if not item["deleted"]["BOOL"]
        }
        assert live == {"first": first["id"], "second": second["id"]}, region.region
        timeline = region.timeline(ids["cc_reader"])
        assert timeline.count(first["id"]) == timeline.count(second["id"]) == 1, region.region


def test_one_key_posted_many_times_at_once_makes_one_tweet(local, tokens, ids):
    front = local.settings.front_door_url
    call = Call("POST", "/tweets", tokens["cc_fan9"], {"text": "only once"}, "cc-same-key-1")
    answers = at_once(front, [call] * 30)

    accepted = {body["id"] for status, body in answers if status == 201}
    assert len(accepted) == 1 and all(status in (201, 503) for status, _ in answers), answers
    for region in settled(local):
        assert [
            tid
            for tid, item in region.tweets(ids["cc_fan9"]).items()
            if item.get("text", {}).get("S") == "only once"
        ] == list(accepted)


def test_deleting_a_tweet_takes_its_retweets_out_of_every_timeline_in_every_region(local, tokens, ids):
    front = local.settings.front_door_url
    at_once(front, [Call("POST", "/users/cc_fan1/follow", tokens["cc_fan2"])])
    [(status, original)] = at_once(
        front, [Call("POST", "/tweets", tokens["cc_author"], {"text": "regretted"}, "cc-retweet-1")]
    )
    [(retweeted, retweet)] = at_once(
        front, [Call("POST", f"/tweets/{original['id']}/retweet", tokens["cc_fan1"])]
    )
    assert (status, retweeted, retweet["original"]["text"]) == (201, 201, "regretted")
    for region in settled(local):
        assert retweet["id"] in region.timeline(ids["cc_fan2"]), region.region

    [(deleted, _)] = at_once(front, [Call("DELETE", f"/tweets/{original['id']}", tokens["cc_author"])])
    assert deleted == 200
    for region in settled(local):
        assert retweet["id"] not in region.timeline(ids["cc_fan2"]), region.region
        assert region.tweets(ids["cc_fan1"])[retweet["id"]]["deleted"] == {"BOOL": True}
        status, body, _ = request(
            f"{local.settings.api_url(region.region)}/tweets/{retweet['id']}",
            headers={"Authorization": f"Bearer {tokens['cc_fan2']}"},
        )
        assert status == 404 and "regretted" not in json.dumps(body), region.region


def test_a_user_is_their_id_whatever_the_spelling_of_their_username(local, tokens, ids):
    front = local.settings.front_door_url
    location = identity.user_pool_location(local.client("ssm"))
    cognito = local.client("cognito-idp", location["region"])
    # Straight to the pool, past make token's lower-casing: moto's pool takes a second account
    # whose username differs from another's only by case.
    dave = identity.id_token(cognito, location, "Dave")
    impostor = identity.id_token(cognito, location, "CC_AUTHOR")
    assert identity.caller_of(impostor).user_id != ids["cc_author"]

    [(posted, own)] = at_once(front, [Call("POST", "/tweets", dave, {"text": "Dave's own"}, "cc-dave-1")])
    [(_, victim)] = at_once(
        front, [Call("POST", "/tweets", tokens["cc_author"], {"text": "not yours"}, "cc-victim-1")]
    )
    [(deleted, _)] = at_once(front, [Call("DELETE", f"/tweets/{victim['id']}", impostor)])
    [(followed, follow)] = at_once(front, [Call("POST", "/users/CC_Author/follow", impostor)])
    [(_, dave_followed)] = at_once(front, [Call("POST", "/users/DAVE/follow", tokens["cc_reader"])])
    [(unknown, missing)] = at_once(front, [Call("POST", "/users/nobody_here/follow", dave)])

    assert (posted, deleted, followed, unknown) == (201, 403, 200, 404)
    assert follow["user_id"] == ids["cc_author"]  # the handle stays the first account's
    assert dave_followed["user_id"] == identity.caller_of(dave).user_id == own["author"]
    assert missing["error"]["field"] == "handle"
    local.settle()
    authorized = {"Authorization": f"Bearer {dave}"}
    status, page, _ = request(f"{front}/timeline", headers=authorized)
    assert status == 200 and own["id"] in [item["id"] for item in page["items"]]
    assert request(f"{front}/tweets/{victim['id']}", headers=authorized)[0] == 200


def test_a_short_mixed_load_with_a_region_failure_keeps_every_invariant(stage):
    """make load, short: 6 users for 24 s with the primary region down for the middle third."""
    summary = stage.state_dir / "load.json"
    result = stage.run_module(
        "tools.load", "--use-running-stage", "--users", "6", "--duration", "24", "--json", str(summary)
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    figures = json.loads(summary.read_text())
    assert figures["passed"] and set(figures["invariants"].values()) == {0}, figures["invariants"]
    assert figures["accepted_posts"] > 0 and figures["accepted_likes"] > 0
    assert not [s for s in figures["statuses"] if s[1] == 500]
