"""The environment the API functions' template gives them, for handlers run in tests (their events
come from the local-AWS harness, tools.local_aws.api_events)."""

from __future__ import annotations

from aviary.media_urls import MEDIA_BASE_URL_VARIABLE
from aviary.naming import table_name
from aviary.schema import COUNTS, IDEMPOTENCY, MEDIA, SOCIAL_GRAPH, TWEETS

MEDIA_BASE_URL = "https://media.aviary.example.com"  # stacks/config.py's media_base_url by default


# What the API functions' environment holds in the template, for handlers run in tests.
HANDLER_ENVIRONMENT = {
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_METRICS_NAMESPACE": "Aviary",
    "AVIARY_TWEETS_TABLE": table_name(TWEETS),
    "AVIARY_SOCIAL_GRAPH_TABLE": table_name(SOCIAL_GRAPH),
    "AVIARY_IDEMPOTENCY_TABLE": table_name(IDEMPOTENCY),
    "AVIARY_MEDIA_TABLE": table_name(MEDIA),
    # A derived table is named by CloudFormation; any name does here.
    "AVIARY_COUNTS_TABLE": table_name(COUNTS),
    # The tweets routes' only: they show media URLs.
    MEDIA_BASE_URL_VARIABLE: MEDIA_BASE_URL,
}
