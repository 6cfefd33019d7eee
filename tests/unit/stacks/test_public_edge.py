"""Each region's public edge: certificate, custom domain, TLS listener, zonal shift, and the latency
records with their health checks; `local` keeps a plain HTTP listener and no Route 53 at all."""

from __future__ import annotations

import json

import pytest

from stacks.aviary_app import stack_name
from stacks.components.latency_record import FAILURE_THRESHOLD, REQUEST_INTERVAL_SECONDS
from stacks.components.timeline_load_balancer import HTTPS_PORT
from stacks.components.write_api import HEALTH_ROUTE


def _service(region: str) -> str:
    return stack_name("Service", region)


def _one(assembly, stack: str, kind: str) -> tuple[str, dict]:
    [(logical_id, resource)] = assembly.resources(stack, kind).items()
    return logical_id, resource["Properties"]


def _alb(assembly, stack):
    return _one(assembly, stack, "AWS::ElasticLoadBalancingV2::LoadBalancer")


def test_one_certificate_per_region_for_both_names_validated_in_the_zone(prod_assembly):
    config = prod_assembly.config
    for region in config.region_names:
        _, certificate = _one(prod_assembly, _service(region), "AWS::CertificateManager::Certificate")
        assert certificate["DomainName"] == config.api_name
        assert certificate["SubjectAlternativeNames"] == [config.timeline_name]
        assert certificate["ValidationMethod"] == "DNS"
        assert certificate["DomainValidationOptions"] == [
            {"DomainName": name, "HostedZoneId": config.hosted_zone_id}
            for name in (config.api_name, config.timeline_name)
        ]


def test_the_api_has_a_regional_custom_domain_mapped_to_its_stage(prod_assembly):
    config = prod_assembly.config
    for region in config.region_names:
        stack = _service(region)
        certificate_id, _ = _one(prod_assembly, stack, "AWS::CertificateManager::Certificate")
        domain_id, domain = _one(prod_assembly, stack, "AWS::ApiGatewayV2::DomainName")
        assert domain["DomainName"] == config.api_name
        assert domain["DomainNameConfigurations"] == [
            {
                "CertificateArn": {"Ref": certificate_id},
                "EndpointType": "REGIONAL",
                "SecurityPolicy": "TLS_1_2",
            }
        ]
        api_id, _ = _one(prod_assembly, stack, "AWS::ApiGatewayV2::Api")
        _, stage = _one(prod_assembly, stack, "AWS::ApiGatewayV2::Stage")
        _, mapping = _one(prod_assembly, stack, "AWS::ApiGatewayV2::ApiMapping")
        assert mapping == {"ApiId": {"Ref": api_id}, "DomainName": {"Ref": domain_id}, "Stage": "$default"}
        assert stage["StageName"] == "$default"


def test_the_health_route_needs_no_token_and_runs_the_health_handler(prod_assembly):
    for region in prod_assembly.config.region_names:
        stack = _service(region)
        resources = prod_assembly.template_json(stack)["Resources"]
        [route] = [
            r["Properties"]
            for r in prod_assembly.resources(stack, "AWS::ApiGatewayV2::Route").values()
            if r["Properties"]["RouteKey"] == HEALTH_ROUTE
        ]
        assert route["AuthorizationType"] == "NONE" and "AuthorizerId" not in route
        integration_id = route["Target"]["Fn::Join"][1][1]["Ref"]
        function_id = resources[integration_id]["Properties"]["IntegrationUri"]["Fn::GetAtt"][0]
        function = resources[function_id]["Properties"]
        assert function["Handler"] == "lambda_functions.api.health.handler"
        assert function["Timeout"] <= 5


def test_health_function_may_only_read_items_of_the_source_tables(assembly):
    for region in assembly.config.region_names:
        stack = _service(region)
        resources = assembly.template_json(stack)["Resources"]
        [function_id] = [
            lid
            for lid, r in assembly.resources(stack, "AWS::Lambda::Function").items()
            if r["Properties"].get("Handler") == "lambda_functions.api.health.handler"
        ]
        role = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        statements = [
            s
            for p in assembly.resources(stack, "AWS::IAM::Policy").values()
            if {"Ref": role} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        ]
        assert [s["Action"] for s in statements] == ["dynamodb:GetItem"]
        tables = {r.rsplit("/", 1)[-1] for r in statements[0]["Resource"]}
        assert tables == {"aviary-tweets", "aviary-social-graph", "aviary-idempotency", "aviary-media"}
        assert all(f":{region}:" in r for r in statements[0]["Resource"])


def test_prod_listens_with_https_only_under_a_tls_1_2_plus_post_quantum_policy(prod_assembly):
    for region in prod_assembly.config.region_names:
        stack = _service(region)
        certificate_id, _ = _one(prod_assembly, stack, "AWS::CertificateManager::Certificate")
        alb_id, _ = _alb(prod_assembly, stack)
        _, listener = _one(prod_assembly, stack, "AWS::ElasticLoadBalancingV2::Listener")
        assert listener["LoadBalancerArn"] == {"Ref": alb_id}
        assert (listener["Port"], listener["Protocol"]) == (HTTPS_PORT, "HTTPS")
        assert listener["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"  # TLS_POLICY
        assert listener["Certificates"] == [{"CertificateArn": {"Ref": certificate_id}}]
        assert [a["Type"] for a in listener["DefaultActions"]] == ["forward"]
        assert prod_assembly.resources(stack, "AWS::ElasticLoadBalancingV2::ListenerRule") == {}


def _alb_ingress(assembly, stack):
    resources = assembly.template_json(stack)["Resources"]
    _, alb = _alb(assembly, stack)
    [group] = [g["Fn::GetAtt"][0] for g in alb["SecurityGroups"]]
    rules = [dict(r) for r in resources[group]["Properties"].get("SecurityGroupIngress", [])]
    rules += [
        r["Properties"]
        for r in assembly.resources(stack, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
    ]
    return [
        (r.get("CidrIp") or r.get("CidrIpv6"), r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in rules
    ]


def test_prod_load_balancer_accepts_443_only_and_port_80_is_closed(prod_assembly):
    """A redirect from port 80 would come after a client's token had crossed in clear text."""
    for region in prod_assembly.config.region_names:
        assert _alb_ingress(prod_assembly, _service(region)) == [("0.0.0.0/0", "tcp", 443, 443)]


def test_local_keeps_one_plain_http_listener_that_checkov_is_told_about(local_assembly):
    for region in local_assembly.config.region_names:
        stack = _service(region)
        _, listener = _one(local_assembly, stack, "AWS::ElasticLoadBalancingV2::Listener")
        assert (listener["Port"], listener["Protocol"]) == (80, "HTTP")
        assert _alb_ingress(local_assembly, stack) == [("0.0.0.0/0", "tcp", 80, 80)]
        assert local_assembly.resources(stack, "AWS::CertificateManager::Certificate") == {}
        [listener_resource] = local_assembly.resources(
            stack, "AWS::ElasticLoadBalancingV2::Listener"
        ).values()
        skipped = {s["id"] for s in listener_resource["Metadata"]["checkov"]["skip"]}
        assert skipped == {"CKV_AWS_2", "CKV_AWS_103"}


def test_zonal_shift_is_allowed_and_cross_zone_stays_off(assembly):
    for region in assembly.config.region_names:
        stack = _service(region)
        _, alb = _alb(assembly, stack)
        attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
        assert attributes["zonal_shift.config.enabled"] == "true"
        [group] = assembly.resources(stack, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
        target_attributes = {a["Key"]: a["Value"] for a in group["Properties"]["TargetGroupAttributes"]}
        assert target_attributes["load_balancing.cross_zone.enabled"] == "false"


def test_zonal_autoshift_practice_runs_end_on_any_per_az_alarm(prod_assembly):
    for region in prod_assembly.config.regions:
        stack = _service(region.name)
        alb_id, _ = _alb(prod_assembly, stack)
        _, autoshift = _one(prod_assembly, stack, "AWS::ARCZonalShift::ZonalAutoshiftConfiguration")
        assert autoshift["ResourceIdentifier"] == {"Ref": alb_id}
        assert autoshift["ZonalAutoshiftStatus"] == "ENABLED"
        [outcome] = autoshift["PracticeRunConfiguration"]["OutcomeAlarms"]
        assert outcome["Type"] == "CLOUDWATCH"
        composite_id = outcome["AlarmIdentifier"]["Fn::GetAtt"][0]
        composite = prod_assembly.template_json(stack)["Resources"][composite_id]
        assert composite["Type"] == "AWS::CloudWatch::CompositeAlarm"
        rule = json.dumps(composite["Properties"]["AlarmRule"])
        zone_alarms = {
            lid
            for lid, a in prod_assembly.resources(stack, "AWS::CloudWatch::Alarm").items()
            if a["Properties"].get("Namespace") == "AWS/ApplicationELB"
        }
        assert len(zone_alarms) == 3 * len(region.availability_zones)
        assert {lid for lid in zone_alarms if f'["{lid}", "Arn"]' in rule} == zone_alarms
        assert rule.count("ALARM(") == len(zone_alarms) and " AND " not in rule


def test_local_has_no_route53_acm_or_autoshift(local_assembly):
    for name in local_assembly.stacks:
        kinds = {r["Type"] for r in local_assembly.template_json(name)["Resources"].values()}
        assert not {
            k for k in kinds if k.split("::")[1] in ("Route53", "CertificateManager", "ARCZonalShift")
        }


@pytest.mark.parametrize("which", ["api", "timeline"])
def test_each_region_has_a_latency_record_per_name_that_follows_its_own_health_check(prod_assembly, which):
    config = prod_assembly.config
    name = {"api": config.api_name, "timeline": config.timeline_name}[which]
    identifiers = []
    for region in config.region_names:
        stack = _service(region)
        resources = prod_assembly.template_json(stack)["Resources"]
        [record] = [
            r["Properties"]
            for lid, r in prod_assembly.resources(stack, "AWS::Route53::RecordSet").items()
            if r["Properties"]["Name"] == f"{name}."
        ]
        assert record["HostedZoneId"] == config.hosted_zone_id
        assert (record["Type"], record["Region"], record["SetIdentifier"]) == ("A", region, region)
        identifiers.append(record["SetIdentifier"])
        check = resources[record["HealthCheckId"]["Ref"]]
        assert check["Type"] == "AWS::Route53::HealthCheck"
        props = check["Properties"]["HealthCheckConfig"]
        assert props["Type"] == "HTTPS" and props["Port"] == 443 and props["ResourcePath"] == "/health"
        assert props["RequestInterval"] == REQUEST_INTERVAL_SECONDS == 10
        assert props["FailureThreshold"] == FAILURE_THRESHOLD <= 3
        alias = record["AliasTarget"]
        if which == "api":
            domain_id, _ = _one(prod_assembly, stack, "AWS::ApiGatewayV2::DomainName")
            assert alias["DNSName"] == {"Fn::GetAtt": [domain_id, "RegionalDomainName"]}
            assert alias["HostedZoneId"] == {"Fn::GetAtt": [domain_id, "RegionalHostedZoneId"]}
            # The health check calls this region's API itself, not the name that may lead elsewhere.
            api_id, _ = _one(prod_assembly, stack, "AWS::ApiGatewayV2::Api")
            assert props["FullyQualifiedDomainName"] == {
                "Fn::Join": ["", [{"Ref": api_id}, f".execute-api.{region}.", {"Ref": "AWS::URLSuffix"}]]
            }
        else:
            alb_id, _ = _alb(prod_assembly, stack)
            assert alias["DNSName"] == {"Fn::Join": ["", ["dualstack.", {"Fn::GetAtt": [alb_id, "DNSName"]}]]}
            assert props["FullyQualifiedDomainName"] == {"Fn::GetAtt": [alb_id, "DNSName"]}
    assert sorted(identifiers) == sorted(config.region_names)


def test_no_region_declares_another_regions_records(prod_assembly):
    for region in prod_assembly.config.region_names:
        for name in prod_assembly.stacks:
            for record in prod_assembly.resources(name, "AWS::Route53::RecordSet").values():
                if record["Properties"].get("Region") == region:
                    assert name == _service(region)
