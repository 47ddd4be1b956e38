"""VPC layout: pure CIDR maths, then the resources the dev stack would create."""

from __future__ import annotations

import ipaddress

import pulumi
import pytest

from components.network import pick_azs, plan_subnets
from tests.conftest import plan_for

AZS3 = ["us-west-2a", "us-west-2b", "us-west-2c"]


@pytest.mark.parametrize(
    "cidr, azs, private, public",
    [
        ("10.0.0.0/16", AZS3, ["10.0.0.0/18", "10.0.64.0/18", "10.0.128.0/18"],
         ["10.0.192.0/22", "10.0.196.0/22", "10.0.200.0/22"]),
        ("10.1.0.0/16", AZS3[:2], ["10.1.0.0/18", "10.1.64.0/18"], ["10.1.192.0/22", "10.1.196.0/22"]),
        ("172.16.0.0/20", AZS3, ["172.16.0.0/22", "172.16.4.0/22", "172.16.8.0/22"],
         ["172.16.12.0/26", "172.16.12.64/26", "172.16.12.128/26"]),
        ("10.0.0.0/16", [f"z{i}" for i in range(6)], [f"10.0.{32 * i}.0/19" for i in range(6)],
         ["10.0.224.0/23", "10.0.226.0/23", "10.0.228.0/23", "10.0.230.0/23", "10.0.232.0/23", "10.0.234.0/23"]),
    ],
)
def test_plan_subnets(cidr, azs, private, public):
    plan = plan_subnets(cidr, azs)
    assert [p.private_cidr for p in plan] == private
    assert [p.public_cidr for p in plan] == public
    assert [p.az for p in plan] == azs
    nets = [ipaddress.ip_network(c) for c in private + public]
    vpc = ipaddress.ip_network(cidr)
    assert all(n.subnet_of(vpc) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])


def test_private_subnets_hold_most_addresses():
    plan = plan_subnets("10.0.0.0/16", AZS3)
    private = sum(ipaddress.ip_network(p.private_cidr).num_addresses for p in plan)
    assert private >= 0.74 * 65536


def test_pick_azs_skips_zones_eks_does_not_support():
    names = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"]
    ids = ["use1-az1", "use1-az2", "use1-az4", "use1-az6", "use1-az3", "use1-az5"]
    assert pick_azs(names, ids, 6 - 1) == ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f"]
    with pytest.raises(pulumi.RunError, match="only 5 zones that EKS supports"):
        pick_azs(names, ids, 6)


def test_one_private_and_one_public_subnet_per_az(dev_plan):
    subnets = dev_plan.of_type("aws:ec2/subnet:Subnet")
    private = [s for s in subnets if "-private-" in s.name]
    public = [s for s in subnets if "-public-" in s.name]
    assert len(private) == len(public) == 3
    assert sorted(s.inputs["availabilityZone"] for s in private) == AZS3
    assert sorted(s.inputs["availabilityZone"] for s in public) == AZS3
    for s in private:
        tags = s.inputs["tags"]
        assert tags["kubernetes.io/role/internal-elb"] == "1"
        assert tags["karpenter.sh/discovery"] == "nim-on-eks-dev"
        assert tags["kubernetes.io/cluster/nim-on-eks-dev"] == "shared"
        assert "kubernetes.io/role/elb" not in tags
    for s in public:
        assert s.inputs["tags"]["kubernetes.io/role/elb"] == "1"
        assert s.inputs["tags"]["kubernetes.io/cluster/nim-on-eks-dev"] == "shared"  # internet-facing LBs find it
        assert "karpenter.sh/discovery" not in s.inputs["tags"]
        assert s.inputs["mapPublicIpOnLaunch"] is False
    vpc = dev_plan.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["cidrBlock"] == "10.0.0.0/16"
    # EKS needs both: nodes register by DNS name, and EFS mount targets and the private endpoint resolve in the VPC
    assert (vpc.inputs["enableDnsHostnames"], vpc.inputs["enableDnsSupport"]) == (True, True)


def test_single_nat_gateway_by_default_routes_every_private_subnet(dev_plan):
    [nat] = dev_plan.of_type("aws:ec2/natGateway:NatGateway")
    private_rts = [r for r in dev_plan.of_type("aws:ec2/routeTable:RouteTable") if "-private-rt-" in r.name]
    assert len(private_rts) == 3
    assert [rt.inputs["routes"][0]["natGatewayId"] for rt in private_rts] == [nat.id] * 3
    assert all(nat.urn in rt.dependencies for rt in private_rts)
    public_rt = dev_plan.one("aws:ec2/routeTable:RouteTable", "nim-on-eks-dev-public-rt")
    igw = dev_plan.one("aws:ec2/internetGateway:InternetGateway")
    assert igw.urn in public_rt.dependencies
    assert public_rt.inputs["routes"] == [{"cidrBlock": "0.0.0.0/0", "gatewayId": igw.id}]
    for rt in private_rts:
        assert rt.inputs["routes"] == [{"cidrBlock": "0.0.0.0/0", "natGatewayId": nat.id}]  # never the IGW
    # the NAT gateway sits in a public subnet, on an Elastic IP, and is created only once the VPC has its internet
    # gateway (AWS: a NAT gateway in a VPC without one fails); on destroy it goes first
    public_ids = {s.id for s in dev_plan.of_type("aws:ec2/subnet:Subnet") if "-public-" in s.name}
    assert nat.inputs["subnetId"] in public_ids
    eip = dev_plan.one("aws:ec2/eip:Eip")
    assert nat.inputs["allocationId"] == eip.id and eip.inputs["domain"] == "vpc"
    assert dev_plan.depends_on(nat, igw)


@pytest.mark.parametrize("overrides", [(), ("single_nat_gateway=false", "availability_zones=2")])
def test_every_subnet_uses_the_route_table_of_its_kind_and_zone(overrides):
    plan = plan_for(*overrides)
    subnets = {s.id: s for s in plan.of_type("aws:ec2/subnet:Subnet")}
    tables = {rt.id: rt for rt in plan.of_type("aws:ec2/routeTable:RouteTable")}
    igw = plan.one("aws:ec2/internetGateway:InternetGateway")
    nats = {n.id: n for n in plan.of_type("aws:ec2/natGateway:NatGateway")}
    associations = plan.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    assert sorted(a.inputs["subnetId"] for a in associations) == sorted(subnets)  # each subnet exactly once
    for a in associations:
        subnet = subnets[a.inputs["subnetId"]]
        [route] = tables[a.inputs["routeTableId"]].inputs["routes"]
        assert route["cidrBlock"] == "0.0.0.0/0"
        if "-public-" in subnet.name:
            assert route == {"cidrBlock": "0.0.0.0/0", "gatewayId": igw.id}, subnet.name
        else:
            assert set(route) == {"cidrBlock", "natGatewayId"}, subnet.name
            nat_subnet = subnets[nats[route["natGatewayId"]].inputs["subnetId"]]
            assert "-public-" in nat_subnet.name
            if "single_nat_gateway=false" in overrides:  # a zone's outage takes only its own egress
                assert nat_subnet.inputs["availabilityZone"] == subnet.inputs["availabilityZone"]


def test_one_nat_gateway_per_az_when_asked():
    plan = plan_for("single_nat_gateway=false", "availability_zones=2")
    nats = plan.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 2
    rts = sorted((r for r in plan.of_type("aws:ec2/routeTable:RouteTable") if "-private-rt-" in r.name),
                 key=lambda r: r.name)
    for nat, rt in zip(sorted(nats, key=lambda r: r.name), rts):
        assert rt.inputs["routes"][0]["natGatewayId"] == nat.id
    assert len(plan.of_type("aws:ec2/subnet:Subnet")) == 4


def test_s3_gateway_endpoint_saves_nat_traffic(dev_plan):
    endpoint = dev_plan.one("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert endpoint.inputs["serviceName"] == "com.amazonaws.us-west-2.s3"
    assert endpoint.inputs["vpcEndpointType"] == "Gateway"
    private_rts = [r.id for r in dev_plan.of_type("aws:ec2/routeTable:RouteTable") if "-private-rt-" in r.name]
    assert sorted(endpoint.inputs["routeTableIds"]) == sorted(private_rts)  # every zone's nodes, not some
