"""The typed, frozen deployment configuration that app.py builds and every stack receives.

Settings come from CDK context (cdk.json, `cdk synth -c key=value`) and default to the
values below. A bad setting stops synth with one sentence that names it (ConfigError).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

# The account moto's server uses; it is also the default so that synth needs no AWS account.
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGIONS = ("us-east-1", "us-west-2")

# The retention periods CloudWatch Logs accepts.
# fmt: off
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)
# fmt: on

# Families whose instances carry NVMe instance-store disks (the read hosts keep their cache
# there, never on EBS). Graviton families ("g") need the arm64 image.
INSTANCE_STORE_FAMILIES = frozenset(
    {
        "c5d", "c5ad", "c6id", "c6gd", "c7gd", "c8gd",
        "m5d", "m5ad", "m5dn", "m6id", "m6idn", "m6gd", "m7gd", "m8gd",
        "r5d", "r5ad", "r5dn", "r6id", "r6idn", "r6gd", "r7gd", "r8gd",
        "i3", "i3en", "i4i", "i4g", "i7ie", "i8g", "im4gn", "is4gen",
        "x2idn", "x2iedn", "z1d",
    }
)  # fmt: skip
_INSTANCE_TYPE_RE = re.compile(r"^([a-z0-9-]+)\.([a-z0-9-]+)$")

_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
# A DNS label as certificates and Route 53 accept it: letters, digits and inner hyphens.
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTED_ZONE_ID_RE = re.compile(r"^Z[A-Z0-9]{1,31}$")
# An address SNS can deliver to: one @, a local part and a dotted domain, no spaces.
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
# The first name of an ACM certificate becomes its subject's common name, which X.509 caps at 64.
MAX_CERTIFICATE_NAME = 64

# The public names under `domainName`: the write API, the timeline read path and media delivery.
API_PREFIX = "api"
TIMELINE_PREFIX = "timeline"
MEDIA_PREFIX = "media"


class ConfigError(ValueError):
    """A deployment setting is invalid; the message is one sentence naming the setting."""


# The one command that records an account's AZs: a synth with this context key set, in which
# app.py lets the CDK CLI look up the AZs it is missing (ordinary synths never look anything up).
RECORD_AZS_COMMAND = "make account-context ACCOUNT={account}"
LOOKUP_AZS_CONTEXT = "aviary:lookupAvailabilityZones"


class MissingAvailabilityZones(ConfigError):
    """cdk.context.json holds no AZs for this account and region; app.py can ask the CLI for them."""

    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region
        super().__init__(
            f"Setting 'regions' has {region}, whose availability zones for account {account} are not in "
            f"cdk.context.json; record them with credentials for that account: "
            f"{RECORD_AZS_COMMAND.format(account=account)} (with the same CONTEXT, if it sets regions)."
        )


class Stage(StrEnum):
    PROD = "prod"  # real AWS: global tables, S3 replication, Route 53
    LOCAL = "local"  # the moto server: per-region tables; the local runtime replicates


@dataclass(frozen=True)
class RegionConfig:
    name: str
    availability_zones: tuple[str, ...]


@dataclass(frozen=True)
class DeploymentConfig:
    """Everything that varies between deployments of Aviary."""

    stage: Stage
    account: str
    regions: tuple[RegionConfig, ...]
    required_read_capacity: int  # timeline hosts each region needs with no AZ lost
    celebrity_follower_threshold: int  # authors above this are merged on read, not fanned out
    timeline_max_entries: int  # per-user cap on materialised timeline entries
    media_noncurrent_version_days: int  # how long an overwritten or deleted media version is kept
    log_retention_days: int  # access logs, flow logs and function logs
    host_instance_type: str  # timeline hosts; must have NVMe instance store
    domain_name: str  # the public names are api., timeline. and media. under it
    hosted_zone_id: str  # the Route 53 public hosted zone that holds domain_name
    hosted_zone_name: str  # that zone's name; domain_name is inside it
    alert_email: str | None  # subscribed to every region's alerts topic, if given

    @property
    def api_name(self) -> str:
        """The write API's name: a latency record per region to its API Gateway custom domain."""
        return f"{API_PREFIX}.{self.domain_name}"

    @property
    def timeline_name(self) -> str:
        """The read path's name: a latency record per region to its timeline load balancer."""
        return f"{TIMELINE_PREFIX}.{self.domain_name}"

    @property
    def media_name(self) -> str:
        """Media delivery's name: one record to the CloudFront distribution."""
        return f"{MEDIA_PREFIX}.{self.domain_name}"

    @property
    def media_base_url(self) -> str:
        """What a media URL starts with; the object's key follows it."""
        return f"https://{self.media_name}"

    @property
    def hosts_per_az(self) -> int:
        """Static stability: with any one AZ lost, the others still hold the required capacity."""
        azs = len(self.regions[0].availability_zones)
        return -(-self.required_read_capacity // (azs - 1))

    @property
    def hosts_needed_per_az(self) -> int:
        """An AZ's share of the required capacity while every AZ serves (DNS spreads clients evenly)."""
        azs = len(self.regions[0].availability_zones)
        return -(-self.required_read_capacity // azs)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    @property
    def primary_region(self) -> str:
        """The region whose data stack declares the global tables (replicas go everywhere else)."""
        return self.regions[0].name

    def other_regions(self, region: str) -> tuple[str, ...]:
        return tuple(r for r in self.region_names if r != region)

    @property
    def is_local(self) -> bool:
        return self.stage is Stage.LOCAL


# Context keys, their defaults and a one-line meaning (the README's settings table).
SETTINGS: Mapping[str, tuple[Any, str]] = {
    "stage": ("prod", "prod (real AWS) or local (the moto server)"),
    "account": (DEFAULT_ACCOUNT, "12-digit AWS account ID the stacks are bound to"),
    "regions": (",".join(DEFAULT_REGIONS), "two or more distinct regions, first is primary"),
    "azsPerRegion": (3, "AZs used in each region, taken in order from cdk.context.json"),
    "availabilityZones": (None, 'explicit AZs per region, JSON: {"us-east-1": ["us-east-1a", ...]}'),
    "readCapacityPerRegion": (6, "timeline hosts each region needs, to survive one AZ loss"),
    "celebrityFollowerThreshold": (10_000, "authors with more followers are merged on read"),
    "timelineMaxEntries": (800, "cap on entries kept in one user's materialised timeline"),
    "mediaNoncurrentVersionDays": (30, "days an overwritten or deleted media version is kept"),
    "logRetentionDays": (90, "days access logs, VPC flow logs and function logs are kept"),
    "hostInstanceType": ("m6id.large", "timeline host type; needs NVMe instance store (a *d family)"),
    "domainName": ("aviary.example.com", "public names are api., timeline. and media. under it"),
    "hostedZoneId": ("Z0123456789EXAMPLE0AB", "ID of the Route 53 public hosted zone holding domainName"),
    "hostedZoneName": ("example.com", "name of that hosted zone; domainName must be inside it"),
    "alertEmail": (None, "e-mail address subscribed to every region's alerts topic; none by default"),
}


def az_context_key(account: str, region: str) -> str:
    """The key under which `cdk context` (and cdk.context.json) stores a region's AZs."""
    return f"availability-zones:account={account}:region={region}"


def load_config(context: Callable[[str], Any]) -> DeploymentConfig:
    """Build and validate the config from a context getter such as `app.node.try_get_context`."""

    def setting(key: str) -> Any:
        value = context(key)
        return SETTINGS[key][0] if value is None else value

    stage_value = str(setting("stage")).strip().lower()
    try:
        stage = Stage(stage_value)
    except ValueError:
        raise ConfigError(f"Setting 'stage' must be 'prod' or 'local', not {stage_value!r}.") from None

    account = str(setting("account")).strip()
    if not _ACCOUNT_RE.match(account):
        raise ConfigError(f"Setting 'account' must be a 12-digit AWS account ID, not {account!r}.")

    region_names = _parse_list("regions", setting("regions"))
    for name in region_names:
        if not _REGION_RE.match(name):
            raise ConfigError(f"Setting 'regions' has {name!r}, which is not an AWS region name.")
    duplicates = sorted({r for r in region_names if region_names.count(r) > 1})
    if duplicates:
        raise ConfigError(f"Setting 'regions' lists {', '.join(duplicates)} more than once.")
    if len(region_names) < 2:
        raise ConfigError(
            f"Setting 'regions' needs at least 2 regions for disaster recovery, got {len(region_names)}."
        )

    azs_per_region = _positive_int("azsPerRegion", setting("azsPerRegion"))
    if azs_per_region < 2:
        raise ConfigError(
            "Setting 'azsPerRegion' must be at least 2, so that losing one AZ leaves capacity elsewhere."
        )
    explicit_azs = _parse_json_mapping("availabilityZones", setting("availabilityZones"))

    regions = tuple(
        _region_config(name, account, azs_per_region, explicit_azs.get(name), context)
        for name in region_names
    )
    unknown = sorted(set(explicit_azs) - set(region_names))
    if unknown:
        raise ConfigError(
            f"Setting 'availabilityZones' names {', '.join(unknown)}, which is not in 'regions'."
        )

    log_retention_days = _positive_int("logRetentionDays", setting("logRetentionDays"))
    if log_retention_days not in LOG_RETENTION_DAYS:
        raise ConfigError(
            f"Setting 'logRetentionDays' is {log_retention_days}, which CloudWatch Logs does not offer; "
            f"choose one of {', '.join(map(str, LOG_RETENTION_DAYS))}."
        )

    host_instance_type = str(setting("hostInstanceType")).strip().lower()
    match = _INSTANCE_TYPE_RE.match(host_instance_type)
    if not match:
        raise ConfigError(
            f"Setting 'hostInstanceType' must look like m6id.large, not {host_instance_type!r}."
        )
    if match.group(1) not in INSTANCE_STORE_FAMILIES:
        raise ConfigError(
            f"Setting 'hostInstanceType' is {host_instance_type}, which has no NVMe instance store; "
            f"choose a type from a family such as m6id, c6id or r6id."
        )

    hosted_zone_name = _dns_name("hostedZoneName", setting("hostedZoneName"))
    domain_name = _dns_name("domainName", setting("domainName"))
    if domain_name != hosted_zone_name and not domain_name.endswith(f".{hosted_zone_name}"):
        raise ConfigError(
            f"Setting 'domainName' is {domain_name}, which is not inside the hosted zone "
            f"{hosted_zone_name} ('hostedZoneName')."
        )
    longest = f"{TIMELINE_PREFIX}.{domain_name}"
    if len(longest) > MAX_CERTIFICATE_NAME:
        raise ConfigError(
            f"Setting 'domainName' makes {longest} {len(longest)} characters long, but a certificate's "
            f"name may have at most {MAX_CERTIFICATE_NAME}; choose a shorter domain."
        )
    hosted_zone_id = str(setting("hostedZoneId")).strip()
    if not _HOSTED_ZONE_ID_RE.match(hosted_zone_id):
        raise ConfigError(
            f"Setting 'hostedZoneId' must be a Route 53 hosted zone ID such as Z0123456789EXAMPLE0AB "
            f"(Z and up to 31 capital letters or digits), not {hosted_zone_id!r}."
        )

    alert_email = setting("alertEmail")
    if alert_email is not None:
        alert_email = str(alert_email).strip()
        if not _EMAIL_RE.match(alert_email):
            raise ConfigError(
                f"Setting 'alertEmail' must be one e-mail address such as ops@example.com, "
                f"not {alert_email!r}."
            )

    return DeploymentConfig(
        stage=stage,
        account=account,
        regions=regions,
        required_read_capacity=_positive_int("readCapacityPerRegion", setting("readCapacityPerRegion")),
        celebrity_follower_threshold=_positive_int(
            "celebrityFollowerThreshold", setting("celebrityFollowerThreshold")
        ),
        timeline_max_entries=_positive_int("timelineMaxEntries", setting("timelineMaxEntries")),
        media_noncurrent_version_days=_positive_int(
            "mediaNoncurrentVersionDays", setting("mediaNoncurrentVersionDays")
        ),
        log_retention_days=log_retention_days,
        host_instance_type=host_instance_type,
        domain_name=domain_name,
        hosted_zone_id=hosted_zone_id,
        hosted_zone_name=hosted_zone_name,
        alert_email=alert_email,
    )


def _region_config(
    region: str,
    account: str,
    azs_per_region: int,
    explicit: Any,
    context: Callable[[str], Any],
) -> RegionConfig:
    known = context(az_context_key(account, region))
    if not known:
        raise MissingAvailabilityZones(account, region)
    if explicit is None:
        if len(known) < azs_per_region:
            raise ConfigError(
                f"Setting 'azsPerRegion' is {azs_per_region}, but {region} has only "
                f"{len(known)} availability zones in cdk.context.json."
            )
        return RegionConfig(region, tuple(known[:azs_per_region]))

    chosen = _parse_list("availabilityZones", explicit)
    for az in chosen:
        if az not in known:
            raise ConfigError(
                f"Setting 'availabilityZones' has {az!r} for {region}, which is not one of its "
                f"availability zones in cdk.context.json ({', '.join(known)})."
            )
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"Setting 'availabilityZones' lists an AZ of {region} more than once.")
    if len(chosen) != azs_per_region:
        raise ConfigError(
            f"Setting 'availabilityZones' gives {region} {len(chosen)} AZs, but 'azsPerRegion' is "
            f"{azs_per_region}."
        )
    return RegionConfig(region, tuple(chosen))


def _parse_list(key: str, value: Any) -> list[str]:
    # `-c regions=a,b` arrives as a string; cdk.json may hold a JSON list.
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [str(part).strip() for part in value]
    else:
        raise ConfigError(f"Setting {key!r} must be a list or a comma-separated string, not {value!r}.")
    if any(not item for item in items):
        raise ConfigError(f"Setting {key!r} has an empty entry: {value!r}.")
    return items


def _parse_json_mapping(key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"Setting {key!r} must be a JSON object, not {value!r}.") from None
    if not isinstance(value, dict):
        raise ConfigError(f"Setting {key!r} must be a JSON object of region to AZ list, not {value!r}.")
    return value


def _dns_name(key: str, value: Any) -> str:
    """A lower-cased DNS name of at least two labels; one trailing dot (the root) is allowed."""
    name = str(value).strip().lower()
    name = name[:-1] if name.endswith(".") else name
    labels = name.split(".")
    if len(labels) < 2 or len(name) > 253 or not all(_DNS_LABEL_RE.match(label) for label in labels):
        raise ConfigError(
            f"Setting {key!r} must be a DNS name such as aviary.example.com (labels of letters, digits "
            f"and inner hyphens, separated by dots), not {value!r}."
        )
    return name


def _positive_int(key: str, value: Any) -> int:
    # bool is an int in Python; `true` is never a capacity.
    if isinstance(value, bool):
        raise ConfigError(f"Setting {key!r} must be a whole number greater than 0, not {value!r}.")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"Setting {key!r} must be a whole number greater than 0, not {value!r}.") from None
    if number <= 0:
        raise ConfigError(f"Setting {key!r} must be a whole number greater than 0, not {number}.")
    return number


def project_context(project_dir: Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The context the CDK CLI hands the app: cdk.json's, then cdk.context.json, then `-c` overrides."""
    context = dict(json.loads((project_dir / "cdk.json").read_text())["context"])
    context.update(json.loads((project_dir / "cdk.context.json").read_text()))
    context.update(overrides or {})
    return context
