"""VPC: one large private and one small public subnet per AZ, internet gateway, NAT, routes, discovery tags."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from planning.config import NetworkSettings

# Zones where EKS cannot place a control plane (EKS user guide, "VPC and subnet requirements").
EKS_UNSUPPORTED_ZONE_IDS = ("use1-az3", "usw1-az2", "cac1-az3")


@dataclass(frozen=True)
class SubnetPlan:
    az: str
    private_cidr: str
    public_cidr: str


def plan_subnets(vpc_cidr: str, azs: list[str]) -> list[SubnetPlan]:
    """Carve the VPC: the first len(azs) of 2^k equal blocks are private; the last block holds small public subnets.

    Pods take VPC addresses (VPC CNI), so private subnets get nearly all the space; public subnets only hold
    NAT gateways and load balancers. 10.0.0.0/16 with 3 AZs gives private /18s and public /22s.
    """
    net = ipaddress.IPv4Network(vpc_cidr)
    blocks_bits = math.ceil(math.log2(len(azs) + 1))
    blocks = list(net.subnets(prefixlen_diff=blocks_bits))
    public_bits = max(math.ceil(math.log2(len(azs))), 4)  # up to 16 public subnets in the spare block
    publics = list(blocks[-1].subnets(prefixlen_diff=public_bits))
    if publics[0].prefixlen > 28:
        raise ValueError(f"{vpc_cidr} is too small for {len(azs)} AZs")
    return [SubnetPlan(az, str(blocks[i]), str(publics[i])) for i, az in enumerate(azs)]


def pick_azs(available: list[str], zone_ids: list[str], count: int) -> list[str]:
    """The first `count` zones EKS supports, in name order; a clear error when the region has fewer."""
    usable = sorted(name for name, zid in zip(available, zone_ids) if zid not in EKS_UNSUPPORTED_ZONE_IDS)
    if len(usable) < count:
        raise pulumi.RunError(
            f"availability_zones: {count} requested, but this region has only {len(usable)} zones "
            f"that EKS supports ({', '.join(usable)}); allowed: 2 to {len(usable)}"
        )
    return usable[:count]


@dataclass
class NetworkArgs:
    cluster_name: str
    region: str
    settings: NetworkSettings  # vpc_cidr, single_nat_gateway (the zone count became `azs`)
    azs: list[str]
    tags: dict[str, str] = field(default_factory=dict)


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    egress: list[pulumi.Resource]
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}

        def tags(name_tag: str, **extra: str) -> dict[str, str]:
            return {**args.tags, "Name": name_tag, **extra}

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.settings.vpc_cidr,
            enable_dns_hostnames=True,  # EKS nodes and EFS mount targets resolve by DNS
            enable_dns_support=True,
            tags=tags(f"{args.cluster_name}-vpc"),
            opts=child,
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, tags=tags(f"{args.cluster_name}-igw"), opts=child
        )

        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags=tags(f"{args.cluster_name}-public"),
            opts=child,
        )

        self.subnet_plan = plan_subnets(args.settings.vpc_cidr, args.azs)
        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        nat_gateways: list[aws.ec2.NatGateway] = []
        private_route_tables: list[aws.ec2.RouteTable] = []
        associations: list[aws.ec2.RouteTableAssociation] = []

        for i, plan in enumerate(self.subnet_plan):
            public = aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=self.vpc.id,
                cidr_block=plan.public_cidr,
                availability_zone=plan.az,
                map_public_ip_on_launch=False,  # only NAT gateways and load balancers live here
                tags=tags(f"{args.cluster_name}-public-{plan.az}", **cluster_tag, **{"kubernetes.io/role/elb": "1"}),
                opts=child,
            )
            associations.append(aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=public.id, route_table_id=public_rt.id, opts=child
            ))
            self.public_subnets.append(public)

            if i == 0 or not args.settings.single_nat_gateway:
                eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=tags(f"{args.cluster_name}-nat-{plan.az}"), opts=child)
                nat_gateways.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{i}",
                        allocation_id=eip.id,
                        subnet_id=public.id,
                        tags=tags(f"{args.cluster_name}-nat-{plan.az}"),
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                    )
                )

            private = aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=self.vpc.id,
                cidr_block=plan.private_cidr,
                availability_zone=plan.az,
                tags=tags(
                    f"{args.cluster_name}-private-{plan.az}",
                    **cluster_tag,
                    **{"kubernetes.io/role/internal-elb": "1", "karpenter.sh/discovery": args.cluster_name},
                ),
                opts=child,
            )
            route_table = aws.ec2.RouteTable(
                f"{name}-private-rt-{i}",
                vpc_id=self.vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat_gateways[-1].id)],
                tags=tags(f"{args.cluster_name}-private-{plan.az}"),
                opts=child,
            )
            associations.append(aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}", subnet_id=private.id, route_table_id=route_table.id, opts=child
            ))
            private_route_tables.append(route_table)
            self.private_subnets.append(private)

        # Free S3 gateway endpoint: ECR image layers come from S3, so pulls skip the NAT's per-GB charge.
        s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_route_tables],
            tags=tags(f"{args.cluster_name}-s3"),
            opts=child,
        )

        self.vpc_id = self.vpc.id
        self.private_subnet_ids = [s.id for s in self.private_subnets]
        self.public_subnet_ids = [s.id for s in self.public_subnets]
        self.nat_gateway_count = len(nat_gateways)
        # How private subnets reach AWS APIs and registries. Nodes need it to join; on destroy, Karpenter and the CSI
        # drivers need it to terminate instances and delete volumes, so everything on the nodes must go first.
        self.egress: list[pulumi.Resource] = [*nat_gateways, public_rt, *private_route_tables, *associations,
                                              s3_endpoint]
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
            }
        )
