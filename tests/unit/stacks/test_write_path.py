"""The write path's wiring: API and authorizer, handlers, fan-out mapping, media pipeline, alarms."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from aviary import keys, naming
from lambda_functions.api.routes import ROUTES
from stacks.aviary_app import stack_name
from stacks.components.write_api import BURST_LIMIT, HEALTH_ROUTE, RATE_LIMIT
from tests.cloud_assembly import PROJECT


def _service(region):
    return stack_name("Service", region)


def _functions(assembly, region):
    return assembly.resources(_service(region), "AWS::Lambda::Function")


def _our_functions(assembly, region):
    return {
        lid: f
        for lid, f in _functions(assembly, region).items()
        if f["Properties"].get("Handler", "").startswith("lambda_functions.")
    }


def test_every_handler_starts_with_exactly_the_environment_its_template_gives_it(prod_assembly):
    """A fresh interpreter per function, as Lambda would: import the handler with the template's
    variables (a deploy-time value becomes a placeholder) and find it callable."""
    functions = _our_functions(prod_assembly, prod_assembly.config.primary_region).values()
    handlers = {f["Properties"]["Handler"]: f["Properties"]["Environment"]["Variables"] for f in functions}
    assert set(handlers) == {
        "lambda_functions.api.tweets.handler",
        "lambda_functions.api.users.handler",
        "lambda_functions.api.media.handler",
        "lambda_functions.api.health.handler",
        "lambda_functions.fanout.handler.handler",
        "lambda_functions.graph_stream.handler.handler",
        "lambda_functions.follow_stream.handler.handler",
        "lambda_functions.timeline_repair.handler.handler",
        "lambda_functions.idempotency_stream.handler.handler",
        "lambda_functions.media_processor.handler.handler",
        "lambda_functions.token_settings.publisher.handler",
    }
    for handler, variables in handlers.items():
        module, _, name = handler.rpartition(".")
        env = {k: v if isinstance(v, str) else "deploy-time-value" for k, v in variables.items()}
        env |= {"PATH": os.environ["PATH"], "AWS_DEFAULT_REGION": "us-east-1"}
        result = subprocess.run(
            [sys.executable, "-c", f"import {module} as m; assert callable(m.{name})"],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{handler}: {result.stderr[-2000:]}"


def test_functions_are_small_quick_and_current(assembly):
    for region in assembly.config.region_names:
        for lid, function in _our_functions(assembly, region).items():
            props = function["Properties"]
            assert props["Runtime"] == "python3.14", lid
            assert props["Architectures"] == ["arm64"], lid
            assert props["Timeout"] <= 30, lid
            # Each function's AVIARY_* settings: tests/unit/stacks/test_runtime_settings.py.
            assert props["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == "Aviary"


def test_prod_api_requires_a_token_from_the_published_issuer_on_every_route_but_health(prod_assembly):
    for region in prod_assembly.config.region_names:
        stack = _service(region)
        resources = prod_assembly.template_json(stack)["Resources"]
        [authorizer] = prod_assembly.resources(stack, "AWS::ApiGatewayV2::Authorizer").values()
        props = authorizer["Properties"]
        assert props["AuthorizerType"] == "JWT"
        settings_id = next(lid for lid, r in resources.items() if r["Type"] == "Custom::AviaryTokenSettings")
        assert props["JwtConfiguration"]["Issuer"] == {"Fn::GetAtt": [settings_id, "Issuer"]}
        assert props["JwtConfiguration"]["Audience"] == [{"Fn::GetAtt": [settings_id, "Audience"]}]
        routes = {
            r["Properties"]["RouteKey"]: r["Properties"]
            for r in prod_assembly.resources(stack, "AWS::ApiGatewayV2::Route").values()
        }
        assert sorted(routes) == sorted([*ROUTES, HEALTH_ROUTE])
        assert all(routes[key]["AuthorizationType"] == "JWT" for key in ROUTES)
        assert routes[HEALTH_ROUTE]["AuthorizationType"] == "NONE"  # test_public_edge.py
        [stage] = prod_assembly.resources(stack, "AWS::ApiGatewayV2::Stage").values()
        assert stage["Properties"]["DefaultRouteSettings"] == {
            "ThrottlingBurstLimit": BURST_LIMIT,
            "ThrottlingRateLimit": RATE_LIMIT,
        }
        assert "DestinationArn" in stage["Properties"]["AccessLogSettings"]


def test_local_has_the_functions_but_no_api(local_assembly):
    for region in local_assembly.config.region_names:
        assert local_assembly.resources(_service(region), "AWS::ApiGatewayV2::Api") == {}
        assert len(_our_functions(local_assembly, region)) == 10


def _mappings(assembly, region):
    return [
        m["Properties"]
        for m in assembly.resources(_service(region), "AWS::Lambda::EventSourceMapping").values()
    ]


def _stream_consumers(assembly, region):
    """Each stream mapping by the handler of the function it feeds."""
    functions = _functions(assembly, region)
    consumers = {}
    for mapping in _mappings(assembly, region):
        if mapping.get("StartingPosition") != "TRIM_HORIZON":
            continue
        [function_id] = [lid for lid in functions if mapping["FunctionName"] == {"Ref": lid}]
        consumers[functions[function_id]["Properties"]["Handler"]] = mapping
    return consumers


def test_every_stream_is_read_with_bisect_bounded_retries_and_an_on_failure_queue(assembly):
    for region in assembly.config.region_names:
        consumers = _stream_consumers(assembly, region)
        assert set(consumers) == {
            "lambda_functions.fanout.handler.handler",
            "lambda_functions.graph_stream.handler.handler",
            "lambda_functions.follow_stream.handler.handler",
            "lambda_functions.idempotency_stream.handler.handler",
        }
        for stream in consumers.values():
            assert stream["BisectBatchOnFunctionError"] is True
            assert 0 < stream["MaximumRetryAttempts"] <= 10
            assert 0 < stream["MaximumRecordAgeInSeconds"] <= 24 * 3600
            assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
            assert "Fn::GetAtt" in stream["DestinationConfig"]["OnFailure"]["Destination"]
            source = json.dumps(stream["EventSourceArn"])
            if assembly.config.is_local:
                assert "StreamArn" in source  # this region's own table, from its data stack
            else:
                assert "Table.LatestStreamArn" in source  # this region's replica, looked up at deploy


def test_each_consumer_reads_its_own_tables_stream(assembly):
    config = assembly.config
    for region in config.region_names:
        consumers = _stream_consumers(assembly, region)
        sources = {handler: json.dumps(m["EventSourceArn"]) for handler, m in consumers.items()}
        fanout = sources["lambda_functions.fanout.handler.handler"]
        graph = sources["lambda_functions.graph_stream.handler.handler"]
        follows = sources["lambda_functions.follow_stream.handler.handler"]
        idempotency = sources["lambda_functions.idempotency_stream.handler.handler"]
        assert follows == graph  # the social graph's stream, read twice (its limit per shard)
        if config.is_local:
            assert "SourceTablesTweets" in fanout and "SourceTablesSocialGraph" in graph
            assert "SourceTablesIdempotency" in idempotency
        else:
            assert "TweetsStream" in fanout and "SocialGraphStream" in graph
            assert "IdempotencyStream" in idempotency


def test_only_replaced_idempotency_records_and_follows_reach_the_consumers_that_need_only_them(assembly):
    filtered = {
        "lambda_functions.idempotency_stream.handler.handler": {"eventName": ["MODIFY"]},
        "lambda_functions.follow_stream.handler.handler": {
            "dynamodb": {"Keys": {"sk": {"S": [{"prefix": keys.FOLLOWS_PREFIX}]}}}
        },
    }
    for region in assembly.config.region_names:
        consumers = _stream_consumers(assembly, region)
        for handler, mapping in consumers.items():
            if handler in filtered:
                [only] = mapping["FilterCriteria"]["Filters"]
                assert json.loads(only["Pattern"]) == filtered[handler], handler
            else:
                assert "FilterCriteria" not in mapping, handler


def test_uploads_are_announced_on_a_queue_the_processor_drains(assembly):
    config = assembly.config
    for region in config.region_names:
        data = assembly.template_json(stack_name("Data", region))["Resources"]
        [bucket] = [
            r
            for r in data.values()
            if r["Type"] == "AWS::S3::Bucket"
            and r["Properties"].get("BucketName") == naming.media_bucket_name(config.account, region)
        ]
        [notification] = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
        assert notification["Event"] == "s3:ObjectCreated:*"
        assert notification["Filter"]["S3Key"]["Rules"] == [
            {"Name": "prefix", "Value": keys.MEDIA_KEY_PREFIX}
        ]
        queue_id = notification["Queue"]["Fn::GetAtt"][0]
        assert data[queue_id]["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 5
        [policy] = [
            r
            for r in data.values()
            if r["Type"] == "AWS::SQS::QueuePolicy" and {"Ref": queue_id} in r["Properties"]["Queues"]
        ]
        statement = next(
            s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"
        )
        assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
        assert (
            statement["Condition"]["ArnEquals"]["aws:SourceArn"]
            == f"arn:aws:s3:::{naming.media_bucket_name(config.account, region)}"
        )
        [sqs_mapping] = [m for m in _mappings(assembly, region) if "StartingPosition" not in m]
        assert sqs_mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_alarms_cover_errors_throttles_stream_lag_and_failure_queues(assembly):
    for region in assembly.config.region_names:
        alarms = assembly.resources(_service(region), "AWS::CloudWatch::Alarm").values()
        metrics = [a["Properties"].get("MetricName") for a in alarms]
        assert metrics.count("Errors") == 10
        assert metrics.count("Throttles") == 10
        assert metrics.count("IteratorAge") == 4
        assert metrics.count("ApproximateNumberOfMessagesVisible") == 5
        assert all(a["Properties"]["AlarmActions"] for a in alarms)


def test_function_bundle_carries_powertools_and_our_packages(assembly):
    bundles = [p for p in assembly.directory.glob("asset.*") if (p / "lambda_functions" / "api").is_dir()]
    assert len(bundles) == 1
    [bundle] = bundles
    assert (bundle / "aws_lambda_powertools").is_dir()
    assert (bundle / "aviary" / "tweet_service.py").exists()
    assert not list(bundle.rglob("__pycache__"))


def test_follow_backfill_and_repair_may_read_the_sources_and_write_only_timelines(assembly):
    for region in assembly.config.region_names:
        functions = _our_functions(assembly, region)
        policies = assembly.resources(_service(region), "AWS::IAM::Policy").values()
        for handler in ("follow_stream", "timeline_repair"):
            [function] = [
                f
                for f in functions.values()
                if f["Properties"]["Handler"].startswith(f"lambda_functions.{handler}.")
            ]
            role = function["Properties"]["Role"]["Fn::GetAtt"][0]
            granted: dict[str, set[str]] = {}
            for policy in policies:
                if {"Ref": role} not in policy["Properties"]["Roles"]:
                    continue
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                    actions = (
                        statement["Action"]
                        if isinstance(statement["Action"], list)
                        else [statement["Action"]]
                    )
                    resources = (
                        statement["Resource"]
                        if isinstance(statement["Resource"], list)
                        else [statement["Resource"]]
                    )
                    for resource in resources:
                        granted.setdefault(json.dumps(resource), set()).update(actions)
            writes = {
                a
                for actions in granted.values()
                for a in actions
                if a.startswith("dynamodb:")
                and ("Write" in a or "Put" in a or "Delete" in a or "Update" in a)
            }
            assert writes == {"dynamodb:BatchWriteItem"}, handler
            [timelines] = [r for r, actions in granted.items() if "dynamodb:BatchWriteItem" in actions]
            assert "Timelines" in timelines, handler
            by_author = [r for r in granted if "/index/by_author" in r]
            assert by_author and granted[by_author[0]] == {"dynamodb:Query"}, handler
            assert not any(
                r == '"*"' and any(a.startswith("dynamodb:Get") for a in granted[r]) for r in granted
            )


# Failure queues hold the records a stream consumer gave up on: a new logical ID would replace a
# queue and drop them. The write path's construct id is CDK's hidden "Default" to keep these.
PINNED_FAILURE_QUEUES = {
    "FanoutFailures3749A92A",
    "EdgeCountsFailures13042F73",
    "TimelineUpkeepFollowTimelinesFailuresE776F2B0",
    "DuplicatePostsFailuresA4B167BD",
}


def test_failure_queue_logical_ids_are_pinned(assembly):
    for region in assembly.config.region_names:
        assert set(assembly.resources(_service(region), "AWS::SQS::Queue")) == PINNED_FAILURE_QUEUES, region
