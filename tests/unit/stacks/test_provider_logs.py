"""Every custom resource's provider function logs to a log group that exists before it first runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aws_cdk import App, Stack

from stacks.components.provider_logs import sdk_call_log_group


def _references(value: Any) -> Iterator[str]:
    """Logical IDs a template value refers to by Ref or Fn::GetAtt."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and isinstance(value["Ref"], str):
            yield value["Ref"]
        elif set(value) == {"Fn::GetAtt"}:
            yield value["Fn::GetAtt"][0]
        else:
            for item in value.values():
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _dependencies(resources: dict[str, dict], logical_id: str) -> set[str]:
    """Everything CloudFormation must create before `logical_id` (by reference or DependsOn)."""
    seen: set[str] = set()
    pending = [logical_id]
    while pending:
        resource = resources[pending.pop()]
        depends_on = resource.get("DependsOn", [])
        direct = {
            *_references(resource.get("Properties", {})),
            *([depends_on] if isinstance(depends_on, str) else depends_on),
        }
        for dependency in (direct & set(resources)) - seen:
            seen.add(dependency)
            pending.append(dependency)
    return seen


def _custom_resources(resources: dict[str, dict]) -> dict[str, dict]:
    return {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource["Type"].startswith("Custom::")
        or resource["Type"] == "AWS::CloudFormation::CustomResource"
    }


def test_every_custom_resource_runs_after_its_providers_log_group_exists(assembly):
    config = assembly.config
    checked = 0
    for stack in assembly.stacks:
        resources = assembly.template_json(stack)["Resources"]
        for logical_id, resource in _custom_resources(resources).items():
            [provider] = list(_references(resource["Properties"]["ServiceToken"]))
            function = resources[provider]
            assert function["Type"] == "AWS::Lambda::Function", (stack, logical_id)
            [log_group_id] = list(
                _references(function["Properties"].get("LoggingConfig", {}).get("LogGroup"))
            )
            log_group = resources[log_group_id]
            assert log_group["Type"] == "AWS::Logs::LogGroup", (stack, logical_id)
            assert log_group["Properties"]["RetentionInDays"] == config.log_retention_days, (
                stack,
                log_group_id,
            )
            # Created before the function, so before the custom resource can invoke it.
            assert log_group_id in _dependencies(resources, provider), (stack, provider)
            assert log_group_id in _dependencies(resources, logical_id), (stack, logical_id)
            checked += 1
    if not config.is_local:
        # The VPC's default security group, the replica stream lookups, token settings, replication.
        assert checked >= len(config.region_names) * 3


def test_no_log_group_is_named_after_a_function_it_would_race(assembly):
    # CDK's own provider log group (`/aws/lambda/<function>`) is created after the function.
    for stack in assembly.stacks:
        resources = assembly.template_json(stack)["Resources"]
        functions = {i for i, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
        for logical_id, resource in resources.items():
            if resource["Type"] == "AWS::Logs::LogGroup":
                assert not set(_references(resource.get("Properties", {}))) & functions, (stack, logical_id)


def test_sdk_calls_of_one_stack_share_one_log_group_and_its_retention():
    stack = Stack(App(), "S")
    first = sdk_call_log_group(stack, retention_days=30)
    assert sdk_call_log_group(stack, retention_days=30) is first
    with pytest.raises(ValueError, match="as long"):
        sdk_call_log_group(stack, retention_days=90)
