"""make deploy's plan over synthesized assemblies: the order of its cdk deploy commands against the
manifest's dependencies, what it reads from the templates, and the CLI's dry run and deploy loop."""

from __future__ import annotations

import dataclasses
import subprocess
from typing import Any

import pytest

from stacks.names import stack_name
from tests.cloud_assembly import PROJECT
from tools.deploy import cli
from tools.deploy.plan import deploy_command, deploy_order, fleet_hosts, lambda_concurrency
from tools.local_aws.assembly import StackTemplate, read_assembly


def no_aws(service: str, region: str) -> Any:
    raise AssertionError(f"the dry run asked for a {service} client in {region}")


def manifest_dependencies(assembly) -> dict[str, set[str]]:
    return {
        name: {d for d in artifact.get("dependencies", []) if d in assembly.stacks}
        for name, artifact in assembly.stacks.items()
    }


def test_every_stack_is_deployed_once_and_after_every_stack_it_depends_on(prod_assembly):
    order = [
        s.name
        for s in deploy_order(read_assembly(prod_assembly.directory), prod_assembly.config.region_names)
    ]
    assert sorted(order) == sorted(prod_assembly.stacks)
    for name, dependencies in manifest_dependencies(prod_assembly).items():
        for dependency in dependencies:
            assert order.index(dependency) < order.index(name), f"{name} before {dependency}"


def test_the_stateless_services_come_last_one_region_at_a_time_primary_first(prod_assembly):
    regions = prod_assembly.config.region_names
    order = [s.name for s in deploy_order(read_assembly(prod_assembly.directory), regions)]
    assert order[: len(regions)] == [stack_name("Data", region) for region in regions]
    assert order[-len(regions) :] == [stack_name("Service", region) for region in regions]


def _stack(name: str, region: str, *dependencies: str) -> StackTemplate:
    return StackTemplate(
        name, "111122223333", region, {"Resources": {}}, dependencies=(*dependencies, f"{name}.assets")
    )


def test_a_dependency_outranks_the_kind_order():
    # Were a data stack to need a service stack, the service would go first; asset manifests are not stacks.
    stacks = [
        _stack("Aviary-Data-us-east-1", "us-east-1", "Aviary-Service-us-west-2"),
        _stack("Aviary-Service-us-west-2", "us-west-2"),
        _stack("Aviary-Data-us-west-2", "us-west-2"),
    ]
    order = [s.name for s in deploy_order(stacks, ["us-east-1", "us-west-2"])]
    assert order == ["Aviary-Data-us-west-2", "Aviary-Service-us-west-2", "Aviary-Data-us-east-1"]


def test_each_command_deploys_one_stack_from_the_checked_assembly_and_leaves_approval_to_the_user(tmp_path):
    assert deploy_command("Aviary-Data-us-east-1", tmp_path, None) == (
        "cdk", "deploy", "--app", str(tmp_path), "--exclusively", "--no-notices", "Aviary-Data-us-east-1",
    )  # fmt: skip
    assert "--require-approval any-change" in " ".join(deploy_command("S", tmp_path, "any-change"))
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["--require-approval", "never"])


def test_the_fleet_and_the_functions_needs_come_from_the_templates(prod_assembly):
    config = prod_assembly.config
    stacks = read_assembly(prod_assembly.directory)
    hosts = fleet_hosts(stacks)
    assert set(hosts) == set(config.region_names)
    for region in config.region_names:
        [(instance_type, count)] = hosts[region].items()
        assert instance_type == config.host_instance_type
        assert count >= config.required_read_capacity
    concurrency = lambda_concurrency(stacks)
    assert set(concurrency) == set(config.region_names)
    assert all(need > 100 for need in concurrency.values())  # the API's burst alone is hundreds


def test_lambda_concurrency_adds_api_burst_queue_limits_stream_factors_and_reservations():
    resources = {
        "Stage": {
            "Type": "AWS::ApiGatewayV2::Stage",
            "Properties": {"DefaultRouteSettings": {"ThrottlingBurstLimit": 50}},
        },
        "Queue": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {"ScalingConfig": {"MaximumConcurrency": 5}},
        },
        "Stream": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {"ParallelizationFactor": 3}},
        "Reserved": {"Type": "AWS::Lambda::Function", "Properties": {"ReservedConcurrentExecutions": 7}},
    }
    stack = StackTemplate("S", "111122223333", "eu-west-1", {"Resources": resources})
    assert lambda_concurrency([stack]) == {"eu-west-1": 50 + 5 + 3 + 7}


def test_the_dry_run_prints_every_check_and_the_exact_commands_in_order_with_no_aws_call(prod_assembly):
    lines: list[str] = []
    ran: list[Any] = []
    status = cli.main(
        [
            "-c",
            "stage=prod",
            *_variant_settings(prod_assembly),
            "--dry-run",
            "--assembly",
            str(prod_assembly.directory),
        ],
        clients=no_aws,
        run=lambda *a, **k: ran.append(a),
        write=lines.append,
    )
    assert status == 0 and not ran
    output = "\n".join(lines)
    expected = [
        " ".join(deploy_command(s.name, prod_assembly.directory, None))
        for s in deploy_order(read_assembly(prod_assembly.directory), prod_assembly.config.region_names)
    ]
    printed = [line.strip() for line in output.splitlines() if line.strip().startswith("cdk deploy")]
    assert printed == expected
    assert "Bootstrap: us-east-1 is bootstrapped at version 6 or newer" in output
    assert "now: FAILS: 'account' is the placeholder 123456789012" in output  # the local check, run
    assert output.endswith("This was a dry run: no AWS API was called.")


def _variant_settings(assembly) -> list[str]:
    return [arg for key, value in assembly.variant.context.items() for arg in ("-c", f"{key}={value}")]


def _completed(status: int) -> subprocess.CompletedProcess[Any]:
    return subprocess.CompletedProcess([], status)


def test_a_failed_preflight_deploys_nothing(prod_assembly, monkeypatch):
    monkeypatch.setattr(cli, "run_preflight", lambda checks, clients, write: False)
    ran: list[Any] = []
    lines: list[str] = []
    status = cli.main(
        ["-c", "stage=prod", *_variant_settings(prod_assembly), "--assembly", str(prod_assembly.directory)],
        clients=no_aws,
        run=lambda command, **_: ran.append(command) or _completed(0),
        write=lines.append,
    )
    assert status == 1 and ran == []
    assert lines[-1].startswith("Preflight failed: nothing was deployed.")


def test_the_deploy_runs_one_command_at_a_time_and_stops_at_the_first_failure(prod_assembly, monkeypatch):
    monkeypatch.setattr(cli, "run_preflight", lambda checks, clients, write: True)
    ran: list[list[str]] = []
    lines: list[str] = []

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        ran.append(command)
        assert kwargs["cwd"] == PROJECT and "stdout" not in kwargs  # on the terminal: cdk may ask
        return _completed(1 if len(ran) == 3 else 0)

    status = cli.main(
        ["-c", "stage=prod", *_variant_settings(prod_assembly), "--assembly", str(prod_assembly.directory)],
        clients=no_aws,
        run=run,
        write=lines.append,
    )
    assert status == 1 and len(ran) == 3
    assert (
        f"deploy: {ran[2][-1]} failed (cdk exited with status 1); "
        f"deployed before it: {ran[0][-1]}, {ran[1][-1]}" in lines[-1]
    )


def test_the_local_stage_and_unrecorded_accounts_are_refused_before_any_synth():
    lines: list[str] = []
    ran: list[Any] = []
    run = lambda *a, **k: ran.append(a)  # noqa: E731
    assert cli.main(["-c", "stage=local", "--dry-run"], clients=no_aws, run=run, write=lines.append) == 2
    assert (
        cli.main(["-c", "account=111122223333", "--dry-run"], clients=no_aws, run=run, write=lines.append)
        == 2
    )
    assert not ran
    assert "make deploy-local" in lines[0]
    assert "make account-context ACCOUNT=111122223333" in lines[1]


def test_an_assembly_of_another_account_is_not_deployed(prod_assembly, monkeypatch):
    other = dataclasses.replace(prod_assembly.config, account="111122223333")
    monkeypatch.setattr(cli, "load_config", lambda _context: other)
    lines: list[str] = []
    status = cli.main(
        ["--dry-run", "--assembly", str(prod_assembly.directory)], clients=no_aws, write=lines.append
    )
    assert status == 2
    assert "was synthesized for account 123456789012, not 111122223333" in lines[0]
