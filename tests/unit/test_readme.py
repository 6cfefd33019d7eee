"""The README a newcomer reads first: what Aviary is before any command, nothing outside the
repository, only make targets that exist, and the timeline item shape the API really returns."""

from __future__ import annotations

import json
import re

from aviary.media_urls import MediaUrls
from aviary.timeline import merge_timeline
from aviary.tweets import Tweet
from tests.cloud_assembly import PROJECT

README = (PROJECT / "README.md").read_text()
URLS = MediaUrls("https://media.aviary.example.com")


def test_the_first_screen_says_what_aviary_is_before_any_command():
    before_first_command = README.split("```", 1)[0]
    assert "Aviary is the backend of a Twitter-like microblogging service" in before_first_command
    assert "docs/architecture.md" in before_first_command


def test_nothing_points_outside_the_repository():
    assert "../" not in README
    for linked in re.findall(r"\]\(([^)#]+)\)", README):
        if not linked.startswith("http"):
            assert (PROJECT / linked).exists(), f"README links to {linked}, which is not in the repository"


def test_every_make_target_the_readme_names_exists():
    makefile = (PROJECT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*(?: [a-z][a-z-]*)*):", makefile, re.MULTILINE))
    defined = {name for line in targets for name in line.split()}
    # As a command: in backticks, at the start of a line of a code block, or inside $(...).
    named = set(re.findall(r"(?:`|^\s*|\$\()make (?:-s )?([a-z][a-z-]+)", README, re.MULTILINE))
    assert named and named <= defined, f"not in the Makefile: {sorted(named - defined)}"


def test_the_documented_timeline_item_has_the_fields_a_real_item_has():
    example = re.search(r'```json\n(\{"id".*?\})\n```', README, re.DOTALL).group(1)
    documented = json.loads(example.replace("01KB...", "01KB").replace("<user ID>", "u"))
    entry = {
        "tweet_id": "01JD0000000000000000000001",
        "author_id": "u",
        "created_at": "2026-11-30T09:15:02.123Z",
    }
    [item] = merge_timeline([entry], [], limit=1, cursor=None, urls=URLS)["items"]
    assert list(documented) == list(item)


def _documented_fields(opening: str) -> list[str]:
    """The field names the README lists in backticks after `opening`, e.g. "A tweet is `{id, ...}`"."""
    listed = re.search(re.escape(opening) + r"\s*`\{([^}]*)\}`", " ".join(README.split())).group(1)
    return [name.strip() for name in listed.split(",")]


def test_the_documented_tweet_and_original_have_the_fields_a_real_tweet_has():
    tweet = Tweet("01JD0000000000000000000001", "u", "2026-11-30T09:15:02.123Z", "Hello")
    assert _documented_fields("A tweet is") == list(tweet.to_json(URLS))
    assert _documented_fields("under `original` (") == list(tweet.summary_json(URLS))
