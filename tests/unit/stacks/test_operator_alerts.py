"""Each region's alerts topic reaches the address of the alertEmail setting, or nobody without one."""

from __future__ import annotations

from stacks.aviary_app import stack_name
from tests.cloud_assembly import ALERT_EMAIL


def test_each_regions_alerts_topic_mails_the_configured_address(assembly):
    config = assembly.config
    if assembly.variant.name == "prod-3-regions":
        assert config.alert_email == ALERT_EMAIL  # the variant that checks a subscription
    for region in config.region_names:
        stack = stack_name("Service", region)
        [topic_id] = [
            logical_id
            for logical_id, topic in assembly.resources(stack, "AWS::SNS::Topic").items()
            if topic["Properties"].get("DisplayName") == "Aviary operator alerts"
        ]
        subscriptions = [
            s["Properties"] for s in assembly.resources(stack, "AWS::SNS::Subscription").values()
        ]
        expected = (
            []
            if config.alert_email is None
            else [{"Endpoint": config.alert_email, "Protocol": "email", "TopicArn": {"Ref": topic_id}}]
        )
        assert subscriptions == expected, region
