"""Media delivery in prod: CloudFront in us-east-1 over an origin group of two regions' media buckets,
reached through origin access control, which the buckets and their keys allow."""

from __future__ import annotations

import json

from aviary import naming
from aviary.keys import MEDIA_KEY_PREFIX
from aviary.media_urls import MEDIA_BASE_URL_VARIABLE
from stacks.aviary_app import stack_name
from stacks.components.media_distribution import (
    CACHE_DAYS,
    CONNECTION_ATTEMPTS,
    CONNECTION_TIMEOUT_SECONDS,
    FAILOVER_STATUS_CODES,
)
from stacks.media_delivery_stack import CLOUDFRONT_REGION
from tools.local_runtime import media_delivery

MEDIA = stack_name("MediaDelivery", CLOUDFRONT_REGION)
DAY = 86_400


def _one(assembly, kind):
    [(logical_id, resource)] = assembly.resources(MEDIA, kind).items()
    return logical_id, resource["Properties"]


def _distribution(assembly):
    distribution_id, props = _one(assembly, "AWS::CloudFront::Distribution")
    return distribution_id, props["DistributionConfig"]


def test_the_media_stack_is_in_us_east_1_after_the_origins_data_stacks(prod_assembly):
    config = prod_assembly.config
    artifact = prod_assembly.stacks[MEDIA]
    assert artifact["environment"] == f"aws://{config.account}/us-east-1"
    dependencies = {d for d in artifact.get("dependencies", []) if d in prod_assembly.stacks}
    assert dependencies == {stack_name("Data", r) for r in config.region_names[:2]}


def test_local_has_no_media_delivery_stack(local_assembly):
    assert MEDIA not in local_assembly.stacks


def test_certificate_for_the_media_name_is_in_us_east_1_validated_in_the_zone(prod_assembly):
    config = prod_assembly.config
    certificate_id, certificate = _one(prod_assembly, "AWS::CertificateManager::Certificate")
    assert certificate["DomainName"] == config.media_name
    assert "SubjectAlternativeNames" not in certificate
    assert certificate["DomainValidationOptions"] == [
        {"DomainName": config.media_name, "HostedZoneId": config.hosted_zone_id}
    ]
    _, distribution = _distribution(prod_assembly)
    assert distribution["Aliases"] == [config.media_name]
    assert distribution["ViewerCertificate"] == {
        "AcmCertificateArn": {"Ref": certificate_id},
        "MinimumProtocolVersion": "TLSv1.2_2021",
        "SslSupportMethod": "sni-only",
    }


def test_https_only_get_and_head_only_with_a_long_cache_for_immutable_media(prod_assembly):
    _, distribution = _distribution(prod_assembly)
    behavior = distribution["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "https-only"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"] and behavior["CachedMethods"] == ["GET", "HEAD"]
    assert "CacheBehaviors" not in distribution
    policy_id, policy = _one(prod_assembly, "AWS::CloudFront::CachePolicy")
    assert behavior["CachePolicyId"] == {"Ref": policy_id}
    config = policy["CachePolicyConfig"]
    assert config["DefaultTTL"] == config["MaxTTL"] == CACHE_DAYS * DAY
    assert config["MinTTL"] == DAY
    key = config["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["QueryStringsConfig"] == {"QueryStringBehavior": "whitelist", "QueryStrings": ["versionId"]}
    assert key["CookiesConfig"] == {"CookieBehavior": "none"}
    assert key["HeadersConfig"] == {"HeaderBehavior": "none"}
    assert distribution["Logging"]["Bucket"]["Fn::GetAtt"][0] in prod_assembly.resources(
        MEDIA, "AWS::S3::Bucket"
    )


def test_one_origin_group_fails_over_from_the_primary_regions_bucket_to_the_next(prod_assembly):
    config = prod_assembly.config
    _, distribution = _distribution(prod_assembly)
    access_control_id, access_control = _one(prod_assembly, "AWS::CloudFront::OriginAccessControl")
    assert access_control["OriginAccessControlConfig"]["OriginAccessControlOriginType"] == "s3"
    assert access_control["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    origins = {o["Id"]: o for o in distribution["Origins"]}
    [group] = distribution["OriginGroups"]["Items"]
    assert distribution["OriginGroups"]["Quantity"] == 1
    assert distribution["DefaultCacheBehavior"]["TargetOriginId"] == group["Id"]
    assert sorted(group["FailoverCriteria"]["StatusCodes"]["Items"]) == sorted(FAILOVER_STATUS_CODES)
    assert {500, 502, 503, 504} <= set(FAILOVER_STATUS_CODES)
    members = [origins[m["OriginId"]] for m in group["Members"]["Items"]]
    primary, fallback = config.region_names[:2]
    assert [m["DomainName"] for m in members] == [
        f"{naming.media_bucket_name(config.account, r)}.s3.{r}.amazonaws.com" for r in (primary, fallback)
    ]
    for member in members:
        assert member["OriginAccessControlId"] == {"Fn::GetAtt": [access_control_id, "Id"]}
        assert member["S3OriginConfig"] == {"OriginAccessIdentity": ""}
        assert member["ConnectionAttempts"] == CONNECTION_ATTEMPTS
        assert member["ConnectionTimeout"] == CONNECTION_TIMEOUT_SECONDS


def test_the_media_name_is_an_alias_of_the_distribution_for_ipv4_and_ipv6(prod_assembly):
    config = prod_assembly.config
    distribution_id, distribution = _distribution(prod_assembly)
    assert distribution["IPV6Enabled"] is True
    records = prod_assembly.resources(MEDIA, "AWS::Route53::RecordSet").values()
    assert sorted(r["Properties"]["Type"] for r in records) == ["A", "AAAA"]
    for record in records:
        props = record["Properties"]
        assert props["Name"] == f"{config.media_name}."
        assert props["HostedZoneId"] == config.hosted_zone_id
        assert props["AliasTarget"]["DNSName"] == {"Fn::GetAtt": [distribution_id, "DomainName"]}


def _allowing_cloudfront(statements):
    return [s for s in statements if s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}]


def test_every_media_bucket_and_key_let_this_accounts_distributions_read_media_only(assembly):
    config = assembly.config
    conditions = {
        "StringEquals": {"aws:SourceAccount": config.account},
        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudfront::{config.account}:distribution/*"},
    }
    for region in config.region_names:
        stack = stack_name("Data", region)
        resources = assembly.template_json(stack)["Resources"]
        bucket_id = next(
            lid
            for lid, r in assembly.resources(stack, "AWS::S3::Bucket").items()
            if r["Properties"].get("BucketName") == naming.media_bucket_name(config.account, region)
        )
        [policy] = [
            p["Properties"]["PolicyDocument"]["Statement"]
            for p in assembly.resources(stack, "AWS::S3::BucketPolicy").values()
            if p["Properties"]["Bucket"] == {"Ref": bucket_id}
        ]
        [statement] = _allowing_cloudfront(policy)
        assert statement["Effect"] == "Allow"
        assert sorted(statement["Action"]) == ["s3:GetObject", "s3:GetObjectVersion"]
        assert statement["Resource"] == {
            "Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{MEDIA_KEY_PREFIX}*"]]
        }
        assert statement["Condition"] == conditions
        key_id = resources[bucket_id]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][
            0
        ]["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]["Fn::GetAtt"][0]
        [key_statement] = _allowing_cloudfront(resources[key_id]["Properties"]["KeyPolicy"]["Statement"])
        assert key_statement["Action"] == "kms:Decrypt"
        assert key_statement["Condition"] == conditions


# -- the URLs that lead here -------------------------------------------------------------------------


def test_every_function_and_host_that_shows_tweets_builds_media_urls_on_the_media_name(prod_assembly):
    config = prod_assembly.config
    assert config.media_base_url == f"https://{config.media_name}"
    for region in config.region_names:
        stack = stack_name("Service", region)
        variables = {
            function["Properties"]["Handler"]: function["Properties"]
            .get("Environment", {})
            .get("Variables", {})
            for function in prod_assembly.resources(stack, "AWS::Lambda::Function").values()
            if function["Properties"].get("Handler", "").startswith("lambda_functions.")
        }
        # Only the tweets routes show tweets; no other function is given a setting it does not read.
        showing = {
            handler: v[MEDIA_BASE_URL_VARIABLE]
            for handler, v in variables.items()
            if MEDIA_BASE_URL_VARIABLE in v
        }
        assert showing == {"lambda_functions.api.tweets.handler": f"https://{config.media_name}"}
        # The timeline hosts' environment file (written by the launch template's user data).
        [template] = prod_assembly.resources(stack, "AWS::EC2::LaunchTemplate").values()
        user_data = json.dumps(template["Properties"]["LaunchTemplateData"]["UserData"])
        assert f"\\n{MEDIA_BASE_URL_VARIABLE}=https://{config.media_name}\\n" in user_data


def test_local_media_urls_are_cached_as_long_as_the_distribution_keeps_them():
    assert media_delivery.CACHE_SECONDS == CACHE_DAYS * DAY
