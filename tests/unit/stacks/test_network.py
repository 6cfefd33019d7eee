"""Each region's VPC: exactly the configured AZs, no NAT, gateway endpoints, flow logs."""

from __future__ import annotations

from collections import Counter

from stacks.aviary_app import region_cidr, stack_name


def _subnets(assembly, region):
    subnets = assembly.resources(stack_name("Service", region), "AWS::EC2::Subnet").values()
    return [s["Properties"] for s in subnets]


def _is_public(subnet) -> bool:
    return subnet.get("MapPublicIpOnLaunch") is True


def test_one_public_and_one_private_subnet_in_each_configured_az_and_no_other(assembly):
    for region in assembly.config.regions:
        subnets = _subnets(assembly, region.name)
        public = Counter(s["AvailabilityZone"] for s in subnets if _is_public(s))
        private = Counter(s["AvailabilityZone"] for s in subnets if not _is_public(s))
        expected = Counter(region.availability_zones)
        assert public == expected, region.name
        assert private == expected, region.name


def test_vpc_cidrs_differ_between_regions(assembly):
    cidrs = []
    for index, region in enumerate(assembly.config.region_names):
        [vpc] = assembly.resources(stack_name("Service", region), "AWS::EC2::VPC").values()
        assert vpc["Properties"]["CidrBlock"] == region_cidr(index)
        cidrs.append(vpc["Properties"]["CidrBlock"])
    assert len(set(cidrs)) == len(cidrs)


def test_no_nat_gateway_anywhere(assembly):
    for region in assembly.config.region_names:
        stack = stack_name("Service", region)
        assert assembly.resources(stack, "AWS::EC2::NatGateway") == {}
        assert assembly.resources(stack, "AWS::EC2::EIP") == {}


def test_private_subnets_route_to_nothing_but_gateway_endpoints(assembly):
    """Isolated subnets: no default route at all, so no shared path out of the AZ."""
    for region in assembly.config.region_names:
        stack = stack_name("Service", region)
        resources = assembly.template_json(stack)["Resources"]
        private_tables = {
            assoc["Properties"]["RouteTableId"]["Ref"]
            for assoc in assembly.resources(stack, "AWS::EC2::SubnetRouteTableAssociation").values()
            if not _is_public(resources[assoc["Properties"]["SubnetId"]["Ref"]]["Properties"])
        }
        routes = assembly.resources(stack, "AWS::EC2::Route").values()
        assert not [r for r in routes if r["Properties"]["RouteTableId"]["Ref"] in private_tables]

        endpoints = assembly.resources(stack, "AWS::EC2::VPCEndpoint").values()
        services = {}
        for endpoint in endpoints:
            props = endpoint["Properties"]
            if props["VpcEndpointType"] != "Gateway":
                continue
            name = "".join(str(part) for part in props["ServiceName"]["Fn::Join"][1])
            services[name.rsplit(".", 1)[-1]] = {ref["Ref"] for ref in props["RouteTableIds"]}
        assert set(services) == {"s3", "dynamodb"}
        for service, tables in services.items():
            assert private_tables <= tables, service


def test_public_subnets_are_only_for_the_load_balancer(assembly):
    """Nothing but the Internet route: no instance or function is placed in them yet."""
    for region in assembly.config.region_names:
        stack = stack_name("Service", region)
        resources = assembly.template_json(stack)["Resources"]
        public_subnets = {
            lid
            for lid, r in resources.items()
            if r["Type"] == "AWS::EC2::Subnet" and _is_public(r["Properties"])
        }
        for resource in resources.values():
            if resource["Type"] in {"AWS::EC2::Instance", "AWS::Lambda::Function"}:
                subnet_refs = str(resource["Properties"].get("SubnetId", "")) + str(
                    resource["Properties"].get("VpcConfig", "")
                )
                assert not any(subnet in subnet_refs for subnet in public_subnets)


def test_vpc_flow_logs_capture_all_traffic_with_retention(assembly):
    for region in assembly.config.region_names:
        stack = stack_name("Service", region)
        [flow_log] = assembly.resources(stack, "AWS::EC2::FlowLog").values()
        assert flow_log["Properties"]["TrafficType"] == "ALL"
        group = assembly.template_json(stack)["Resources"][flow_log["Properties"]["LogGroupName"]["Ref"]]
        assert group["Properties"]["RetentionInDays"] == assembly.config.log_retention_days


def test_default_security_group_is_restricted_in_prod(prod_assembly):
    for region in prod_assembly.config.region_names:
        stack = stack_name("Service", region)
        assert prod_assembly.resources(stack, "Custom::VpcRestrictDefaultSG"), region


def test_interface_endpoints_in_every_isolated_subnet_take_https_from_the_vpc(assembly):
    """What hosts call besides S3 and DynamoDB: SSM (token settings, Session Manager) and
    CloudFormation (their readiness signal), each with private DNS so the regional names resolve
    to it, in every AZ's isolated subnet, behind a group that lets the VPC in on 443."""
    for index, region in enumerate(assembly.config.region_names):
        stack = stack_name("Service", region)
        resources = assembly.template_json(stack)["Resources"]
        private_subnets = sorted(
            lid
            for lid, r in resources.items()
            if r["Type"] == "AWS::EC2::Subnet" and not _is_public(r["Properties"])
        )
        interface = {
            e["Properties"]["ServiceName"]: e["Properties"]
            for e in assembly.resources(stack, "AWS::EC2::VPCEndpoint").values()
            if e["Properties"]["VpcEndpointType"] == "Interface"
        }
        assert set(interface) == {
            f"com.amazonaws.{region}.{service}"
            for service in ("ssm", "ssmmessages", "ec2messages", "cloudformation")
        }
        for service, props in interface.items():
            assert props["PrivateDnsEnabled"] is True, service
            assert sorted(ref["Ref"] for ref in props["SubnetIds"]) == private_subnets, service
            [group] = props["SecurityGroupIds"]
            ingress = resources[group["Fn::GetAtt"][0]]["Properties"]["SecurityGroupIngress"]
            assert [(i["IpProtocol"], i["FromPort"], i["ToPort"], i["CidrIp"]) for i in ingress] == [
                ("tcp", 443, 443, region_cidr(index))
            ], service
