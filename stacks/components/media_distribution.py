"""The read path of accepted media: a CloudFront distribution over two regions' media buckets."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from aws_cdk import aws_s3 as s3
from constructs import Construct

from aviary import naming
from stacks.acknowledge import acknowledge, skip_checkov
from stacks.components.access_logs import access_log_bucket

# What sends a request to the second bucket: the first answered with an error (5xx), or without the
# object (S3 answers 403 for a missing key when listing is not allowed; 404 otherwise), which is
# what a bucket shows while replication has not brought the object yet.
FAILOVER_STATUS_CODES = (403, 404, 500, 502, 503, 504)
# A bucket that does not answer is given up after 2 attempts of 3 s each, then the other is asked.
CONNECTION_ATTEMPTS = 2
CONNECTION_TIMEOUT_SECONDS = 3
# An accepted object never changes (aviary.media deletes any later version of its key), so edges
# may keep it as long as CloudFront allows.
CACHE_DAYS = 365


class MediaDistribution(Construct):
    """media.<domain> -> CloudFront -> origin group (primary region's bucket, then the next region's).

    The buckets are imported by their derived names (aviary/naming.py): no reference crosses a
    region. They allow CloudFront (any distribution of this account, through origin access control)
    to read media/ and their keys to decrypt for it (stacks/components/media_storage.py).

    A URL names the object's key, e.g. https://media.<domain>/media/<...>; it may also name the
    accepted version (?versionId=...), which replication keeps the same in every bucket.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        account: str,
        origin_regions: tuple[str, str],
        domain_name: str,
        zone: route53.IHostedZone,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        # CloudFront only takes certificates from us-east-1, which is where this construct's stack is.
        self.certificate = acm.Certificate(
            self,
            "Certificate",
            domain_name=domain_name,
            validation=acm.CertificateValidation.from_dns(zone),
        )
        access_control = cloudfront.S3OriginAccessControl(
            self, "OriginAccessControl", description="Aviary media buckets, read by CloudFront only"
        )

        def origin(region: str) -> cloudfront.IOrigin:
            bucket = s3.Bucket.from_bucket_attributes(
                self,
                f"Bucket-{region}",
                bucket_name=naming.media_bucket_name(account, region),
                region=region,
            )
            return origins.S3BucketOrigin.with_origin_access_control(
                bucket,
                origin_access_control=access_control,
                # The bucket's own stack holds its policy; CDK cannot change an imported one.
                origin_access_levels=[],
                connection_attempts=CONNECTION_ATTEMPTS,
                connection_timeout=Duration.seconds(CONNECTION_TIMEOUT_SECONDS),
            )

        primary, fallback = origin_regions
        self.origin_group = origins.OriginGroup(
            primary_origin=origin(primary),
            fallback_origin=origin(fallback),
            fallback_status_codes=list(FAILOVER_STATUS_CODES),
        )
        cache_policy = cloudfront.CachePolicy(
            self,
            "ImmutableMedia",
            comment="Aviary media: accepted objects never change",
            default_ttl=Duration.days(CACHE_DAYS),
            min_ttl=Duration.days(1),
            max_ttl=Duration.days(CACHE_DAYS),
            cookie_behavior=cloudfront.CacheCookieBehavior.none(),
            header_behavior=cloudfront.CacheHeaderBehavior.none(),
            # A URL may pin the accepted version; nothing else in a query string changes the bytes.
            query_string_behavior=cloudfront.CacheQueryStringBehavior.allow_list("versionId"),
        )
        # CloudFront writes its standard logs with ACLs, so this log bucket keeps them enabled.
        self.logs = access_log_bucket(
            self,
            "AccessLogs",
            retention_days=log_retention_days,
            receives="the media distribution's access logs",
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"Aviary media ({domain_name})",
            domain_names=[domain_name],
            certificate=self.certificate,
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_logging=True,
            log_bucket=self.logs,
            log_file_prefix="media/",
            default_behavior=cloudfront.BehaviorOptions(
                origin=self.origin_group,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cached_methods=cloudfront.CachedMethods.CACHE_GET_HEAD,
                cache_policy=cache_policy,
                compress=False,  # images and video are compressed already
            ),
        )
        acknowledge(
            self.distribution,
            "Annotation::@aws-cdk/aws-cloudfront-origins:updateImportedBucketPolicyOac",
            "Each media bucket's own data stack lets CloudFront read media/ and its key decrypt for "
            "CloudFront (stacks/components/media_storage.py); this stack only names the buckets.",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR1",
            "Media is served to readers wherever they are, as the API is; there is no country "
            "the service is barred from.",
        )
        no_web_acl = (
            "The distribution serves immutable public objects by GET and HEAD only, from its cache; "
            "a web ACL would add cost and nothing to protect, and origins accept CloudFront only."
        )
        acknowledge(self.distribution, "AwsSolutions-CFR2", no_web_acl)
        skip_checkov(self.distribution, "CKV_AWS_68", no_web_acl)
        target = route53.RecordTarget.from_alias(targets.CloudFrontTarget(self.distribution))
        route53.ARecord(self, "Record", zone=zone, record_name=domain_name, target=target)
        route53.AaaaRecord(self, "Ipv6Record", zone=zone, record_name=domain_name, target=target)
