"""The stateful data stacks: source-of-truth tables, timelines, media, in both stages."""

from __future__ import annotations

from aws_cdk.assertions import Match

from aviary import naming
from aviary.schema import SOURCE_OF_TRUTH_TABLES, TIMELINES, TWEETS, TableSchema
from stacks.aviary_app import stack_name


def _key_schema(schema: TableSchema) -> list[dict]:
    keys = [{"AttributeName": schema.partition_key.name, "KeyType": "HASH"}]
    if schema.sort_key:
        keys.append({"AttributeName": schema.sort_key.name, "KeyType": "RANGE"})
    return keys


def _data_stacks(assembly):
    return [stack_name("Data", region) for region in assembly.config.region_names]


def test_every_region_has_a_termination_protected_data_stack(assembly):
    for name in _data_stacks(assembly):
        assert assembly.stacks[name]["properties"].get("terminationProtection") is True, name


def test_prod_declares_each_source_table_once_as_a_global_table_replicated_to_every_region(prod_assembly):
    config = prod_assembly.config
    primary = stack_name("Data", config.primary_region)
    tables = prod_assembly.resources(primary, "AWS::DynamoDB::GlobalTable")
    by_name = {t["Properties"]["TableName"]: t for t in tables.values()}
    assert set(by_name) == {naming.table_name(s) for s in SOURCE_OF_TRUTH_TABLES}

    for schema in SOURCE_OF_TRUTH_TABLES:
        table = by_name[naming.table_name(schema)]
        props = table["Properties"]
        assert table["DeletionPolicy"] == "Retain"
        assert props["KeySchema"] == _key_schema(schema)
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert sorted(r["Region"] for r in props["Replicas"]) == sorted(config.region_names)
        for replica in props["Replicas"]:
            assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
            assert replica["DeletionProtectionEnabled"] is True
        ttl = props.get("TimeToLiveSpecification")
        if schema.ttl_attribute:
            assert ttl == {"AttributeName": schema.ttl_attribute, "Enabled": True}
        else:
            assert ttl is None

    assert by_name[naming.table_name(TWEETS)]["Properties"]["StreamSpecification"] == {
        "StreamViewType": "NEW_AND_OLD_IMAGES"
    }
    # No other region declares a global table: its replica is created from the primary.
    for name in _data_stacks(prod_assembly):
        if name != primary:
            assert prod_assembly.resources(name, "AWS::DynamoDB::GlobalTable") == {}, name


def test_local_has_per_region_copies_of_the_source_tables_under_the_global_names(local_assembly):
    for name in _data_stacks(local_assembly):
        assert local_assembly.resources(name, "AWS::DynamoDB::GlobalTable") == {}
        template = local_assembly.template(name)
        for schema in SOURCE_OF_TRUTH_TABLES:
            expected = {
                "TableName": naming.table_name(schema),
                "KeySchema": _key_schema(schema),
                "BillingMode": "PAY_PER_REQUEST",
                "SSESpecification": {"SSEEnabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "DeletionProtectionEnabled": True,
                # Every change, as a global table streams it: the local runtime replicates from it.
                "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            }
            if schema.ttl_attribute:
                expected["TimeToLiveSpecification"] = {"AttributeName": schema.ttl_attribute, "Enabled": True}
            template.has_resource(
                "AWS::DynamoDB::Table",
                {"Properties": Match.object_like(expected), "DeletionPolicy": "Retain"},
            )


def test_tweets_table_has_the_by_author_and_by_original_indexes_in_both_stages(assembly):
    config = assembly.config
    stack = stack_name("Data", config.primary_region)
    assert [index.name for index in TWEETS.indexes] == ["by_author", "by_original"]
    resource_type = "AWS::DynamoDB::Table" if config.is_local else "AWS::DynamoDB::GlobalTable"
    assembly.template(stack).has_resource_properties(
        resource_type,
        {
            "TableName": naming.table_name(TWEETS),
            "GlobalSecondaryIndexes": [
                Match.object_like(
                    {
                        "IndexName": index.name,
                        "KeySchema": [
                            {"AttributeName": index.partition_key.name, "KeyType": "HASH"},
                            {"AttributeName": index.sort_key.name, "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                )
                for index in TWEETS.indexes
            ],
        },
    )


def test_every_region_has_its_own_unreplicated_timelines_table(assembly):
    for name in _data_stacks(assembly):
        tables = [
            t
            for t in assembly.resources(name, "AWS::DynamoDB::Table").values()
            if t["Properties"]["KeySchema"] == _key_schema(TIMELINES)
        ]
        assert len(tables) == 1, name
        table = tables[0]
        props = table["Properties"]
        assert table["DeletionPolicy"] == "Retain"
        assert "TableName" not in props  # derived data: CloudFormation names it
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["DeletionProtectionEnabled"] is True
        assert props["SSESpecification"] == {"SSEEnabled": True}
        assert props["TimeToLiveSpecification"] == {"AttributeName": TIMELINES.ttl_attribute, "Enabled": True}


def _media_bucket(assembly, region):
    buckets = assembly.resources(stack_name("Data", region), "AWS::S3::Bucket")
    expected_name = naming.media_bucket_name(assembly.config.account, region)
    [(logical_id, bucket)] = [
        (lid, b) for lid, b in buckets.items() if b["Properties"].get("BucketName") == expected_name
    ]
    return logical_id, bucket, buckets


def test_media_bucket_is_versioned_private_kms_encrypted_logged_and_retained(assembly):
    for region in assembly.config.region_names:
        logical_id, bucket, buckets = _media_bucket(assembly, region)
        props = bucket["Properties"]
        assert bucket["DeletionPolicy"] == "Retain"
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        [encryption] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        key_ref = encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]["Fn::GetAtt"][0]
        key = assembly.template_json(stack_name("Data", region))["Resources"][key_ref]
        assert key["Type"] == "AWS::KMS::Key"
        assert key["Properties"]["EnableKeyRotation"] is True
        assert key["DeletionPolicy"] == "Retain"
        assert encryption["BucketKeyEnabled"] is True

        log_target = props["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
        assert log_target in buckets and log_target != logical_id


def test_media_bucket_policy_refuses_requests_without_tls(assembly):
    for region in assembly.config.region_names:
        logical_id, _, _ = _media_bucket(assembly, region)
        assembly.template(stack_name("Data", region)).has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": {"Ref": logical_id},
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Principal": {"AWS": "*"},
                                    "Action": "s3:*",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                }
                            )
                        ]
                    )
                },
            },
        )


def test_media_lifecycle_aborts_stale_uploads_and_expires_old_versions(assembly):
    days = assembly.config.media_noncurrent_version_days
    for region in assembly.config.region_names:
        _, bucket, _ = _media_bucket(assembly, region)
        rules = {rule["Id"]: rule for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
        assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {
            "DaysAfterInitiation": 1
        }
        assert rules["expire-old-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": days}
        assert all(rule["Status"] == "Enabled" for rule in rules.values())


def test_media_key_carries_the_alias_replication_names_it_by(assembly):
    for region in assembly.config.region_names:
        assembly.template(stack_name("Data", region)).has_resource_properties(
            "AWS::KMS::Alias", {"AliasName": naming.MEDIA_KEY_ALIAS}
        )


# Renaming any of these replaces a table, bucket or key and loses its data: a refactor
# that changes one must fail here and be done as a deliberate migration instead.
PINNED_PRIMARY = {"UsersUserPool7E610616": "AWS::Cognito::UserPool"}
PINNED_PROD_PRIMARY = {
    "SourceTablesTweetsC0F451C2": "AWS::DynamoDB::GlobalTable",
    "SourceTablesSocialGraph016C179D": "AWS::DynamoDB::GlobalTable",
    "SourceTablesIdempotency7237B9F8": "AWS::DynamoDB::GlobalTable",
    "SourceTablesMedia72385F33": "AWS::DynamoDB::GlobalTable",
    # the user pool's multi-Region key: replacing it would leave the pool unreadable
    "UsersKey2BD6E0C6": "AWS::KMS::Key",
}
PINNED_LOCAL_SOURCE = {
    "SourceTablesTweetsC0F451C2": "AWS::DynamoDB::Table",
    "SourceTablesSocialGraph016C179D": "AWS::DynamoDB::Table",
    "SourceTablesIdempotency7237B9F8": "AWS::DynamoDB::Table",
    "SourceTablesMedia72385F33": "AWS::DynamoDB::Table",
}
PINNED_EVERY_REGION = {
    "TimelinesTable762CCBBE": "AWS::DynamoDB::Table",
    "CountsTable415F08B3": "AWS::DynamoDB::Table",
    "MediaKeyF1173EF8": "AWS::KMS::Key",
    "MediaAccessLogsD396FE12": "AWS::S3::Bucket",
    "MediaBucket4022EBBF": "AWS::S3::Bucket",
}


STATEFUL_TYPES = {
    "AWS::DynamoDB::GlobalTable",
    "AWS::DynamoDB::Table",
    "AWS::KMS::Key",
    "AWS::S3::Bucket",
    "AWS::Cognito::UserPool",
}


def test_stateful_logical_ids_are_pinned(assembly):
    config = assembly.config
    for region in config.region_names:
        expected = dict(PINNED_EVERY_REGION)
        if region == config.primary_region:
            expected |= PINNED_PRIMARY
        if config.is_local:
            expected |= PINNED_LOCAL_SOURCE
        elif region == config.primary_region:
            expected |= PINNED_PROD_PRIMARY
        resources = assembly.template_json(stack_name("Data", region))["Resources"]
        stateful = {lid: r["Type"] for lid, r in resources.items() if r["Type"] in STATEFUL_TYPES}
        assert stateful == expected, region
        assert all(resources[lid].get("DeletionPolicy") == "Retain" for lid in expected)


def test_source_table_physical_names_are_pinned():
    # A handler in another region finds its replica by this name; renaming replaces the table.
    assert {naming.table_name(schema) for schema in SOURCE_OF_TRUTH_TABLES} == {
        "aviary-tweets",
        "aviary-social-graph",
        "aviary-idempotency",
        "aviary-media",
    }
