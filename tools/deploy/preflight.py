"""The checks `make deploy` runs before its first `cdk deploy`: each asks the account one thing, read
only, and fails with what is wrong and what to do, so that a deploy does not stop half-way for a
reason that was knowable before it began.

Every check takes a client factory, `clients(service, region)`, so tests pass moto or fake clients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from stacks.config import DEFAULT_ACCOUNT, SETTINGS, DeploymentConfig
from tools.deploy.plan import BootstrapNeed, bootstrap_needs, fleet_hosts, lambda_concurrency
from tools.local_aws.assembly import StackTemplate

Clients = Callable[[str, str], Any]
NO_AWS_CALL = "no AWS call"  # a check the dry run runs too

# Service Quotas codes (service code, quota code, name as the console shows it).
LAMBDA_CONCURRENCY_QUOTA = ("lambda", "L-B99A9384", "Concurrent executions")
STANDARD_VCPU_QUOTA = (
    "ec2",
    "L-1216C47A",
    "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
)
X_VCPU_QUOTA = ("ec2", "L-7295265B", "Running On-Demand X instances")
STANDARD_FAMILY_LETTERS = frozenset("acdhimrtz")

# Route 53 is global; its API and STS answer in any region, this one always exists.
GLOBAL_REGION = "us-east-1"


class CheckFailed(Exception):
    """A preflight check found the account not ready; the message says what to do."""


@dataclass(frozen=True)
class Check:
    """One preflight check: what it asks (printed by the dry run) and how."""

    title: str
    asks: str  # the AWS calls it makes, or NO_AWS_CALL
    run: Callable[[Clients], str]  # returns what it found; raises CheckFailed


def preflight_checks(config: DeploymentConfig, stacks: Sequence[StackTemplate]) -> tuple[Check, ...]:
    """The checks for deploying `stacks` (a synthesized assembly) made from `config`, in run order.
    The first two gate the rest: without the right account every other answer would mislead."""
    checks = [
        Check(
            "Settings: the account (its AZs recorded in cdk.context.json) and the domain are yours",
            NO_AWS_CALL,
            lambda _clients: check_settings(config),
        ),
        Check(
            f"Credentials: they are for account {config.account}",
            "sts get-caller-identity",
            lambda clients: check_credentials(clients, config.account),
        ),
    ]
    for need in bootstrap_needs(stacks):
        checks.append(
            Check(
                f"Bootstrap: {need.region} is bootstrapped at version {need.version} or newer",
                f"ssm get-parameter {need.parameter} in {need.region}",
                lambda clients, need=need: check_bootstrap(clients, config.account, need),
            )
        )
    for region in config.regions:
        zones = ", ".join(region.availability_zones)
        checks.append(
            Check(
                f"Zones: {config.host_instance_type} is offered in {zones} (account {config.account})",
                f"ec2 describe-availability-zones, describe-instance-type-offerings in {region.name}",
                lambda clients, region=region: check_instance_type_offered(
                    clients, region.name, region.availability_zones, config.host_instance_type
                ),
            )
        )
    for region, types in fleet_hosts(stacks).items():
        hosts = ", ".join(f"{count} {instance_type}" for instance_type, count in types.items())
        checks.append(
            Check(
                f"EC2 quota: On-Demand vCPUs in {region} hold the fleet at its maximum ({hosts})",
                f"ec2 describe-instance-types, service-quotas get-service-quota in {region}",
                lambda clients, region=region, types=types: check_vcpu_quota(clients, region, types),
            )
        )
    for region, need in lambda_concurrency(stacks).items():
        checks.append(
            Check(
                f"Lambda quota: concurrent executions in {region} are at least {need}",
                f"service-quotas get-service-quota lambda {LAMBDA_CONCURRENCY_QUOTA[1]} in {region}",
                lambda clients, region=region, need=need: check_lambda_concurrency(clients, region, need),
            )
        )
    checks.append(
        Check(
            f"Domain: hosted zone {config.hosted_zone_id} is the public zone {config.hosted_zone_name}",
            "route53 get-hosted-zone",
            lambda clients: check_hosted_zone(clients, config.hosted_zone_id, config.hosted_zone_name),
        )
    )
    return tuple(checks)


GATING_CHECKS = 2  # settings and credentials: if either fails, the rest are not asked


def run_preflight(checks: Sequence[Check], clients: Clients, report: Callable[[str], None]) -> bool:
    """Runs the checks, reporting each; True when all passed. After the gating checks, every check
    runs even when one fails, so that one pass lists everything there is to fix."""
    passed = True
    for index, check in enumerate(checks):
        if index == GATING_CHECKS and not passed:
            report("  (the other checks were not run: they would ask the wrong account)")
            return False
        try:
            found = check.run(clients)
        except CheckFailed as failure:
            report(f"  FAIL  {check.title}\n        {failure}")
            passed = False
        except (ClientError, BotoCoreError) as error:
            report(f"  FAIL  {check.title}\n        {_aws_error(error, check.asks)}")
            passed = False
        else:
            report(f"  ok    {check.title}: {found}")
    return passed


def check_settings(config: DeploymentConfig) -> str:
    """The placeholder account and the example domain synthesize anywhere, but deploy nowhere."""
    problems = []
    if config.account == DEFAULT_ACCOUNT:
        problems.append(f"'account' is the placeholder {DEFAULT_ACCOUNT}: pass ACCOUNT=<your account ID>")
    defaults = {
        "domainName": config.domain_name,
        "hostedZoneId": config.hosted_zone_id,
        "hostedZoneName": config.hosted_zone_name,
    }
    examples = [key for key, value in defaults.items() if value == SETTINGS[key][0]]
    if examples:
        named = " and ".join(", ".join(repr(key) for key in examples).rsplit(", ", 1))
        problems.append(
            f"{named} {'is' if len(examples) == 1 else 'are'} still the committed example: set your public "
            "hosted zone's ID and name and a domainName inside it in cdk.json's context, or pass them "
            'in CONTEXT="-c key=value ..."'
        )
    if problems:
        raise CheckFailed("; ".join(problems) + ".")
    recorded = ", ".join(f"{r.name} ({len(r.availability_zones)} AZs)" for r in config.regions)
    return f"account {config.account} in {recorded}; {config.domain_name} in zone {config.hosted_zone_name}"


def check_credentials(clients: Clients, account: str) -> str:
    try:
        identity = clients("sts", GLOBAL_REGION).get_caller_identity()
    except NoCredentialsError:
        raise CheckFailed(
            f"No AWS credentials were found: sign in to account {account} (aws sso login, or set "
            "AWS_PROFILE or the AWS_ACCESS_KEY_ID variables) and run make deploy again."
        ) from None
    if identity["Account"] != account:
        raise CheckFailed(
            f"The credentials are for account {identity['Account']} ({identity['Arn']}), but the 'account' "
            f"setting is {account}: use credentials for {account} (AWS_PROFILE), or pass "
            f"ACCOUNT={identity['Account']} if that is the account to deploy to."
        )
    return identity["Arn"]


def check_bootstrap(clients: Clients, account: str, need: BootstrapNeed) -> str:
    bootstrap = f"npx cdk bootstrap aws://{account}/{need.region}"
    ssm = clients("ssm", need.region)
    try:
        value = ssm.get_parameter(Name=need.parameter)["Parameter"]["Value"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "ParameterNotFound":
            raise
        raise CheckFailed(
            f"{need.region} is not bootstrapped ({need.parameter} does not exist): run `{bootstrap}` "
            "with credentials for the account."
        ) from None
    if int(value) < need.version:
        raise CheckFailed(
            f"{need.region} is bootstrapped at version {value}, but the assembly needs {need.version}: "
            f"run `{bootstrap}` again to upgrade it."
        )
    return f"version {value}"


def check_instance_type_offered(
    clients: Clients, region: str, zones: Sequence[str], instance_type: str
) -> str:
    """AZ names are shuffled per account; offerings are asked by zone ID, which names the same place
    in every account."""
    ec2 = clients("ec2", region)
    try:
        described = ec2.describe_availability_zones(ZoneNames=list(zones))["AvailabilityZones"]
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("InvalidParameterValue", "InvalidZone.NotFound"):
            raise
        described = []  # AWS refuses the whole call when one name is unknown
    zone_ids = {zone["ZoneName"]: zone["ZoneId"] for zone in described}
    unknown = [name for name in zones if name not in zone_ids]
    if unknown:
        raise CheckFailed(
            f"{region} has no {', '.join(unknown)} in this account: record its AZs again (delete its "
            "entry from cdk.context.json, then make account-context ACCOUNT=<id>), or choose others "
            "with the 'availabilityZones' setting."
        )
    offered = {
        offering["Location"]
        for page in ec2.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="availability-zone-id",
            Filters=[{"Name": "instance-type", "Values": [instance_type]}],
        )
        for offering in page["InstanceTypeOfferings"]
    }
    missing = [f"{name} ({zone_ids[name]})" for name in zones if zone_ids.get(name) not in offered]
    if missing:
        raise CheckFailed(
            f"{instance_type} is not offered in {', '.join(missing)} of {region}: choose other AZs with the "
            "'availabilityZones' setting, or another 'hostInstanceType' with instance store."
        )
    return ", ".join(f"{name} = {zone_ids[name]}" for name in zones)


def check_vcpu_quota(clients: Clients, region: str, hosts: dict[str, int]) -> str:
    ec2 = clients("ec2", region)
    vcpus = {
        described["InstanceType"]: described["VCpuInfo"]["DefaultVCpus"]
        for described in ec2.describe_instance_types(InstanceTypes=sorted(hosts))["InstanceTypes"]
    }
    need_by_quota: dict[tuple[str, str, str], int] = {}
    for instance_type, count in hosts.items():
        family_letter = instance_type[0]
        if family_letter in STANDARD_FAMILY_LETTERS:
            quota = STANDARD_VCPU_QUOTA
        elif family_letter == "x":
            quota = X_VCPU_QUOTA
        else:
            raise CheckFailed(f"No known On-Demand vCPU quota covers {instance_type}; check it by hand.")
        need_by_quota[quota] = need_by_quota.get(quota, 0) + count * vcpus[instance_type]
    found = []
    for quota, need in need_by_quota.items():
        value = applied_quota(clients("service-quotas", region), quota)
        if value < need:
            raise CheckFailed(
                f"'{quota[2]}' ({quota[1]}) in {region} is {value:g} vCPUs, but the fleet may run "
                f"{need}: request an increase to at least {need} in Service Quotas (other instances in "
                "the account count against it too)."
            )
        found.append(f"{quota[1]} is {value:g} vCPUs, fleet needs {need}")
    return "; ".join(found)


def check_lambda_concurrency(clients: Clients, region: str, need: int) -> str:
    value = applied_quota(clients("service-quotas", region), LAMBDA_CONCURRENCY_QUOTA)
    if value < need:
        raise CheckFailed(
            f"Lambda's '{LAMBDA_CONCURRENCY_QUOTA[2]}' ({LAMBDA_CONCURRENCY_QUOTA[1]}) in {region} is "
            f"{value:g}, but the API's burst and the event sources may need {need} at once: request an "
            f"increase to at least {need} in Service Quotas."
        )
    return f"{value:g}, functions need {need}"


def applied_quota(service_quotas: Any, quota: tuple[str, str, str]) -> float:
    """The account's value of a quota; AWS's default where the account has none applied."""
    service_code, quota_code, _name = quota
    try:
        answer = service_quotas.get_service_quota(ServiceCode=service_code, QuotaCode=quota_code)
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchResourceException":
            raise
        answer = service_quotas.get_aws_default_service_quota(ServiceCode=service_code, QuotaCode=quota_code)
    return float(answer["Quota"]["Value"])


def check_hosted_zone(clients: Clients, zone_id: str, zone_name: str) -> str:
    route53 = clients("route53", GLOBAL_REGION)
    try:
        zone = route53.get_hosted_zone(Id=zone_id)["HostedZone"]
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("NoSuchHostedZone", "InvalidInput"):
            raise
        raise CheckFailed(
            f"The account has no hosted zone {zone_id} ('hostedZoneId'): create a public hosted zone for "
            f"{zone_name} in Route 53 (and delegate the name to it), then set its ID."
        ) from None
    actual = zone["Name"].rstrip(".")
    if actual != zone_name:
        raise CheckFailed(
            f"Hosted zone {zone_id} is {actual}, not {zone_name}: set 'hostedZoneName' to {actual}, or "
            "'hostedZoneId' to the ID of the zone for your domain."
        )
    if zone.get("Config", {}).get("PrivateZone"):
        raise CheckFailed(
            f"Hosted zone {zone_id} ({actual}) is private: the public names need a public hosted zone."
        )
    return f"{actual}, public"


def _aws_error(error: ClientError | BotoCoreError, asks: str) -> str:
    if isinstance(error, ClientError):
        code = error.response["Error"].get("Code", "")
        message = error.response["Error"].get("Message", "")
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            return f"Not allowed: {message}. The credentials need permission for: {asks}."
        return f"AWS answered {code}: {message} (asking: {asks})."
    return f"Could not ask AWS ({error}); check the network and the region (asking: {asks})."
