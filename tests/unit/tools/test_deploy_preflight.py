"""make deploy's preflight checks against moto (STS, SSM, EC2, Route 53) and a fake Service Quotas,
which moto answers for VPC quotas only."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from stacks.config import DEFAULT_ACCOUNT, load_config, project_context
from tests.cloud_assembly import PROJECT
from tools.deploy.plan import BootstrapNeed
from tools.deploy.preflight import (
    LAMBDA_CONCURRENCY_QUOTA,
    STANDARD_VCPU_QUOTA,
    Check,
    CheckFailed,
    check_bootstrap,
    check_credentials,
    check_hosted_zone,
    check_instance_type_offered,
    check_lambda_concurrency,
    check_settings,
    check_vcpu_quota,
    preflight_checks,
    run_preflight,
)
from tools.local_aws.assembly import StackTemplate

REAL_DOMAIN = {"domainName": "aviary.birds.test", "hostedZoneId": "Z0BIRDS", "hostedZoneName": "birds.test"}


def config(**settings: Any):
    return load_config(project_context(PROJECT, settings).get)


class FakeServiceQuotas:
    """Answers get_service_quota from `applied`; quotas not applied fall back to `defaults`, as AWS does."""

    def __init__(self, applied: dict[str, float], defaults: dict[str, float] | None = None) -> None:
        self.applied = applied
        self.defaults = defaults or {}
        self.asked: list[tuple[str, str]] = []

    def get_service_quota(self, ServiceCode: str, QuotaCode: str) -> dict[str, Any]:
        self.asked.append((ServiceCode, QuotaCode))
        if QuotaCode not in self.applied:
            raise ClientError(
                {"Error": {"Code": "NoSuchResourceException", "Message": "none"}}, "GetServiceQuota"
            )
        return {"Quota": {"Value": self.applied[QuotaCode]}}

    def get_aws_default_service_quota(self, ServiceCode: str, QuotaCode: str) -> dict[str, Any]:
        return {"Quota": {"Value": self.defaults[QuotaCode]}}


@pytest.fixture
def aws():
    with mock_aws():
        yield lambda service, region: boto3.client(service, region_name=region)


def with_quotas(aws, quotas: FakeServiceQuotas):
    return lambda service, region: quotas if service == "service-quotas" else aws(service, region)


def test_the_placeholder_account_and_the_example_domain_fail_the_settings_check_by_name():
    with pytest.raises(CheckFailed) as failed:
        check_settings(config())
    message = str(failed.value)
    assert f"'account' is the placeholder {DEFAULT_ACCOUNT}: pass ACCOUNT=" in message
    assert "'domainName', 'hostedZoneId' and 'hostedZoneName' are still the committed example" in message


def test_real_settings_pass_and_name_the_regions_whose_azs_are_recorded(monkeypatch):
    # A second account's AZs, as make account-context would have recorded them.
    context = project_context(PROJECT, {"account": "111122223333", **REAL_DOMAIN})
    for region in ("us-east-1", "us-west-2"):
        context[f"availability-zones:account=111122223333:region={region}"] = [f"{region}{z}" for z in "abc"]
    found = check_settings(load_config(context.get))
    assert "account 111122223333 in us-east-1 (3 AZs), us-west-2 (3 AZs)" in found


def test_credentials_must_be_for_the_configured_account(aws):
    assert check_credentials(aws, DEFAULT_ACCOUNT).startswith("arn:aws:sts::123456789012:")
    with pytest.raises(CheckFailed) as failed:
        check_credentials(aws, "111122223333")
    assert "credentials are for account 123456789012" in str(failed.value)
    assert "ACCOUNT=123456789012 if that is the account" in str(failed.value)


NEED = BootstrapNeed("us-west-2", 6, "/cdk-bootstrap/hnb659fds/version")


def test_a_region_without_bootstrap_names_the_command_that_bootstraps_it(aws):
    with pytest.raises(CheckFailed) as failed:
        check_bootstrap(aws, DEFAULT_ACCOUNT, NEED)
    assert "us-west-2 is not bootstrapped" in str(failed.value)
    assert "npx cdk bootstrap aws://123456789012/us-west-2" in str(failed.value)


def test_an_old_bootstrap_must_be_upgraded_and_a_current_one_passes(aws):
    ssm = aws("ssm", "us-west-2")
    ssm.put_parameter(Name=NEED.parameter, Value="5", Type="String")
    with pytest.raises(CheckFailed, match="bootstrapped at version 5, but the assembly needs 6: run"):
        check_bootstrap(aws, DEFAULT_ACCOUNT, NEED)
    ssm.put_parameter(Name=NEED.parameter, Value="30", Type="String", Overwrite=True)
    assert check_bootstrap(aws, DEFAULT_ACCOUNT, NEED) == "version 30"
    # Another region's parameter is not this one's.
    with pytest.raises(CheckFailed, match="not bootstrapped"):
        check_bootstrap(aws, DEFAULT_ACCOUNT, BootstrapNeed("us-east-1", 6, NEED.parameter))


def test_the_instance_type_is_looked_up_by_zone_id_in_every_chosen_az(aws):
    zones = ("us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d")
    found = check_instance_type_offered(aws, "us-west-2", zones, "m6id.large")
    assert "us-west-2a = usw2-az2" in found and "us-west-2d = usw2-az4" in found
    # moto's offerings (copied from AWS) have no c5ad.large in usw2-az3.
    with pytest.raises(CheckFailed) as failed:
        check_instance_type_offered(aws, "us-west-2", zones, "c5ad.large")
    [missing] = [part for part in str(failed.value).split(" of ")[0].split(", ")]
    assert missing.endswith("(usw2-az3)")
    assert "'availabilityZones' setting" in str(failed.value)


def test_an_az_the_account_does_not_have_sends_the_user_back_to_record_them(aws):
    with pytest.raises(
        CheckFailed, match=r"us-west-2 has no us-west-2q in this account: .* make account-context"
    ):
        check_instance_type_offered(aws, "us-west-2", ("us-west-2a", "us-west-2q"), "m6id.large")


def test_the_vcpu_quota_must_hold_the_fleet_at_its_maximum(aws):
    # m6id.large has 2 vCPUs: 18 hosts need 36.
    small = FakeServiceQuotas({}, defaults={STANDARD_VCPU_QUOTA[1]: 32})
    with pytest.raises(CheckFailed) as failed:
        check_vcpu_quota(with_quotas(aws, small), "us-east-1", {"m6id.large": 18})
    assert "is 32 vCPUs, but the fleet may run 36: request an increase to at least 36" in str(failed.value)
    assert small.asked == [("ec2", "L-1216C47A")]
    enough = FakeServiceQuotas({STANDARD_VCPU_QUOTA[1]: 36})
    assert check_vcpu_quota(with_quotas(aws, enough), "us-east-1", {"m6id.large": 18}).endswith("needs 36")


def test_lambda_concurrency_below_the_need_fails_with_the_quota_to_raise(aws):
    new_account = FakeServiceQuotas({LAMBDA_CONCURRENCY_QUOTA[1]: 10})
    with pytest.raises(CheckFailed, match=r"\(L-B99A9384\) in us-west-2 is 10, but .* need 413"):
        check_lambda_concurrency(with_quotas(aws, new_account), "us-west-2", 413)
    default = FakeServiceQuotas({}, defaults={LAMBDA_CONCURRENCY_QUOTA[1]: 1000})
    assert check_lambda_concurrency(with_quotas(aws, default), "us-west-2", 413) == "1000, functions need 413"


def test_the_hosted_zone_must_exist_be_public_and_have_the_configured_name(aws):
    route53 = aws("route53", "us-east-1")
    public = route53.create_hosted_zone(Name="birds.test", CallerReference="1")["HostedZone"]["Id"]
    zone_id = public.rsplit("/", 1)[-1]
    assert check_hosted_zone(aws, zone_id, "birds.test") == "birds.test, public"
    with pytest.raises(CheckFailed, match=r"is birds\.test, not example\.com: set 'hostedZoneName'"):
        check_hosted_zone(aws, zone_id, "example.com")
    with pytest.raises(CheckFailed, match="no hosted zone Z0NOSUCHZONE"):
        check_hosted_zone(aws, "Z0NOSUCHZONE", "birds.test")
    private = route53.create_hosted_zone(
        Name="inside.test",
        CallerReference="2",
        VPC={
            "VPCRegion": "us-east-1",
            "VPCId": aws("ec2", "us-east-1").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"],
        },
        HostedZoneConfig={"PrivateZone": True},
    )["HostedZone"]["Id"]
    with pytest.raises(CheckFailed, match="is private"):
        check_hosted_zone(aws, private.rsplit("/", 1)[-1], "inside.test")


def _check(title: str, outcome: Exception | str) -> Check:
    def run(_clients: Any) -> str:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return Check(title, "test", run)


def test_a_failed_credentials_check_stops_before_the_checks_that_would_ask_the_wrong_account():
    lines: list[str] = []
    checks = [
        _check("settings", "fine"),
        _check("credentials", CheckFailed("wrong")),
        _check("quota", "never"),
    ]
    assert not run_preflight(checks, lambda *_: None, lines.append)
    assert lines[1] == "  FAIL  credentials\n        wrong"
    assert "quota" not in "\n".join(lines)


def test_after_the_gate_every_check_runs_and_every_failure_is_reported():
    lines: list[str] = []
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no ssm"}}, "GetParameter")
    checks = [
        _check("settings", "fine"),
        _check("credentials", "arn"),
        _check("bootstrap", denied),
        _check("zones", CheckFailed("not offered")),
        _check("domain", "public"),
    ]
    assert not run_preflight(checks, lambda *_: None, lines.append)
    assert (
        lines[2]
        == "  FAIL  bootstrap\n        Not allowed: no ssm. The credentials need permission for: test."
    )
    assert lines[3] == "  FAIL  zones\n        not offered"
    assert lines[4] == "  ok    domain: public"


def test_the_checks_cover_every_region_of_the_assembly_and_what_it_needs(prod_assembly):
    from tools.local_aws.assembly import read_assembly

    stacks: tuple[StackTemplate, ...] = read_assembly(prod_assembly.directory)
    titles = [check.title for check in preflight_checks(prod_assembly.config, stacks)]
    for region in prod_assembly.config.region_names:
        assert f"Bootstrap: {region} is bootstrapped at version 6 or newer" in titles
        assert any(t.startswith(f"EC2 quota: On-Demand vCPUs in {region} ") for t in titles)
        assert any(t.startswith(f"Lambda quota: concurrent executions in {region} ") for t in titles)
        assert any(t.startswith("Zones: m6id.large is offered in " + region) for t in titles)
    assert titles[:2] == [
        "Settings: the account (its AZs recorded in cdk.context.json) and the domain are yours",
        f"Credentials: they are for account {DEFAULT_ACCOUNT}",
    ]
