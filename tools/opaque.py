"""What opaque components really create, for the offline plan.

Under Pulumi's mocks a remote (multi-language) component such as pulumi-eks's `eks.Cluster` is one registration with
no children: the mocks decide what its outputs mean. If the mocks were naive (for example one security group id for
both "the cluster security group" outputs), the plan could be fooled exactly the way a real deployment is not. So
this module restates, as data, what the real component creates with the inputs it is given, and what AWS creates
on its own behalf (the EKS-created cluster security group), with their rules. The mock runtime records these as
*implied* resources (children of the component), the system checks (tools/checks.py) reason over them like any
other resource, and the component's resource-typed outputs (`eksCluster`) are real resource references to them.

Sources, pulumi/pulumi-eks v4.4.0 (nodejs/eks/cluster/cluster.ts `createCore`, nodejs/eks/securitygroup.ts
`createNodeGroupSecurityGroup`), unless `skipDefaultSecurityGroups`:
- a cluster security group `<name>-eksClusterSecurityGroup`, egress to anywhere (`-eksClusterInternetEgressRule`),
  ingress 443 from the node security group (`-eksClusterIngressRule`); it is the cluster's *additional* security
  group (vpcConfig.securityGroupIds) and what the output `clusterSecurityGroupId` returns;
- a node security group `<name>-nodeSecurityGroup` for its own node groups: all from itself, 1025-65535 and 443
  from the cluster security group, egress anywhere; the output `nodeSecurityGroupId`.
The cluster security group EKS itself creates (EKS user guide, "View Amazon EKS security group requirements for
clusters": `eks-cluster-sg-<name>-<id>`, all traffic from itself, all egress) is attached to the control-plane ENIs
and to managed node groups that name no security group; it is `eksCluster.vpcConfig.clusterSecurityGroupId`.
Besides: the cluster's IAM role with AmazonEKSClusterPolicy, the OIDC provider (create_oidc_provider), the VPC CNI
(inside a VpcCniAddon component, its configurationValues with `vpcCniOptions.enableNetworkPolicy`; nodejs/eks/addons/
cni-addon.ts) and kube-proxy as managed add-ons at their most recent version, an access entry
(+ policy associations) per `accessEntries` item; no log group (EKS makes `/aws/eks/<name>/cluster` itself when
logging is on and the group does not exist), no instance role with skipDefaultNodeGroup. Checked at
pulumi/pulumi-eks@7bf0c1b (nodejs/eks unchanged from v4.3.0 to v4.4.0).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

EKS_CLUSTER = "eks:index:Cluster"
# Who creates an implied resource: the component's provider plugin, or AWS on the component's behalf.
BY_COMPONENT = "pulumi-eks"
BY_AWS = "AWS (EKS)"


@dataclass
class Implied:
    """One resource an opaque component creates: type, name, id, its state (outputs) and what it depends on."""

    type: str
    name: str
    id: str
    state: dict[str, Any]
    depends_on: list[str] = field(default_factory=list)  # names of other Implied of the same component
    created_by: str = BY_COMPONENT


def _sg_rule(name: str, rtype: str, sg: str, protocol: str, from_port: int, to_port: int, *,
             source_sg: str | None = None, self_: bool = False, cidr: str | None = None,
             description: str = "") -> Implied:
    state: dict[str, Any] = {"type": rtype, "securityGroupId": sg, "protocol": protocol, "fromPort": from_port,
                             "toPort": to_port, "description": description}
    if source_sg:
        state["sourceSecurityGroupId"] = source_sg
    if self_:
        state["self"] = True
    if cidr:
        state["cidrBlocks"] = [cidr]
    return Implied("aws:ec2/securityGroupRule:SecurityGroupRule", name, f"sgrule-{_digest(name)[:10]}", state)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def eks_cluster(name: str, inputs: dict[str, Any], *, partition: str, region: str, account: str) -> list[Implied]:
    """What `eks.Cluster(name, **inputs)` creates (inputs as the engine sees them: camelCase)."""
    cname = inputs.get("name") or name
    d = _digest(name)
    arn = f"arn:{partition}:eks:{region}:{account}:cluster/{cname}"
    skip_sgs = bool(inputs.get("skipDefaultSecurityGroups"))
    subnets = [*(inputs.get("privateSubnetIds") or []), *(inputs.get("publicSubnetIds") or []),
               *(inputs.get("subnetIds") or [])]
    out: list[Implied] = []

    # servicerole.ts: a ServiceRole component `<name>-eksRole` holding the role `<name>-eksRole-role`
    role_name = f"{name}-eksRole-role-{d[:7]}"
    role = Implied("aws:iam/role:Role", f"{name}-eksRole-role", role_name,
                   {"name": role_name, "arn": f"arn:{partition}:iam::{account}:role/{role_name}",
                    "assumeRolePolicy": json.dumps({"Version": "2012-10-17", "Statement": [{
                        "Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"},
                        "Action": ["sts:AssumeRole", "sts:TagSession"]}]})})
    out.append(role)
    out.append(Implied("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{name}-eksRole-cluster-policy",
                       f"{name}-eksRole-cluster-policy-{d[:7]}",
                       {"role": role.state["name"],
                        "policyArn": f"arn:{partition}:iam::aws:policy/AmazonEKSClusterPolicy"},
                       depends_on=[role.name]))

    additional_sgs: list[str] = []
    cluster_sg = node_sg = None
    if not skip_sgs:
        cluster_sg = Implied("aws:ec2/securityGroup:SecurityGroup", f"{name}-eksClusterSecurityGroup",
                             f"sg-0pe0c1u5{d[:9]}",
                             {"vpcId": inputs.get("vpcId"), "description": "Managed by Pulumi",
                              "revokeRulesOnDelete": True,
                              "tags": {"Name": f"{name}-eksClusterSecurityGroup"}})
        out.append(cluster_sg)
        out.append(_sg_rule(f"{name}-eksClusterInternetEgressRule", "egress", cluster_sg.id, "-1", 0, 0,
                            cidr="0.0.0.0/0", description="Allow internet access."))
        additional_sgs.append(cluster_sg.id)

    cluster = Implied(
        "aws:eks/cluster:Cluster", f"{name}-eksCluster", cname,
        {"name": cname, "arn": arn, "roleArn": role.state["arn"], "version": inputs.get("version"),
         "vpcConfig": {"vpcId": inputs.get("vpcId"), "subnetIds": subnets, "securityGroupIds": additional_sgs,
                       "endpointPrivateAccess": bool(inputs.get("endpointPrivateAccess")),
                       "endpointPublicAccess": inputs.get("endpointPublicAccess", True),
                       # created by EKS with the cluster; shared by the control plane and managed node groups
                       "clusterSecurityGroupId": f"sg-0ek5c1u5{d[:9]}"},
         "enabledClusterLogTypes": inputs.get("enabledClusterLogTypes") or [],
         "accessConfig": {"authenticationMode": inputs.get("authenticationMode")},
         "encryptionConfig": ({"resources": ["secrets"], "provider": {"keyArn": inputs["encryptionConfigKeyArn"]}}
                              if inputs.get("encryptionConfigKeyArn") else None),
         "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{d[:32].upper()}"}]}]},
        depends_on=[role.name, f"{name}-eksRole-cluster-policy", *([cluster_sg.name] if cluster_sg else [])],
    )
    out.append(cluster)
    out.append(Implied(
        "aws:ec2/securityGroup:SecurityGroup", f"{name}-eks-cluster-sg", cluster.state["vpcConfig"]["clusterSecurityGroupId"],
        {"vpcId": inputs.get("vpcId"), "name": f"eks-cluster-sg-{cname}",
         "description": "EKS created security group applied to ENI that is attached to EKS Control Plane master "
                        "nodes, as well as any managed workloads.",
         "ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}],
         "egress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}],
         "tags": {"Name": f"eks-cluster-sg-{cname}", f"kubernetes.io/cluster/{cname}": "owned",
                  "aws:eks:cluster-name": cname}},
        depends_on=[cluster.name], created_by=BY_AWS,
    ))

    if not skip_sgs:
        node_sg = Implied("aws:ec2/securityGroup:SecurityGroup", f"{name}-nodeSecurityGroup", f"sg-0pe0n0d3{d[:9]}",
                          {"vpcId": inputs.get("vpcId"), "description": "Managed by Pulumi",
                           "revokeRulesOnDelete": True,
                           "tags": {"Name": f"{name}-nodeSecurityGroup", f"kubernetes.io/cluster/{cname}": "owned"}},
                          depends_on=[cluster.name])
        out.append(node_sg)
        for rule in (
            _sg_rule(f"{name}-eksNodeIngressRule", "ingress", node_sg.id, "-1", 0, 0, self_=True,
                     description="Allow nodes to communicate with each other"),
            _sg_rule(f"{name}-eksNodeClusterIngressRule", "ingress", node_sg.id, "tcp", 1025, 65535,
                     source_sg=cluster_sg.id,
                     description="Allow worker Kubelets and pods to receive communication from the cluster control plane"),
            _sg_rule(f"{name}-eksExtApiServerClusterIngressRule", "ingress", node_sg.id, "tcp", 443, 443,
                     source_sg=cluster_sg.id,
                     description="Allow pods running extension API servers on port 443 to receive communication "
                                 "from cluster control plane"),
            _sg_rule(f"{name}-eksNodeInternetEgressRule", "egress", node_sg.id, "-1", 0, 0, cidr="0.0.0.0/0",
                     description="Allow internet access."),
            _sg_rule(f"{name}-eksClusterIngressRule", "ingress", cluster_sg.id, "tcp", 443, 443,
                     source_sg=node_sg.id, description="Allow pods to communicate with the cluster API Server"),
        ):
            rule.depends_on = [node_sg.name, cluster_sg.name]
            out.append(rule)

    if inputs.get("createOidcProvider"):
        issuer = cluster.state["identities"][0]["oidcs"][0]["issuer"].removeprefix("https://")
        out.append(Implied("aws:iam/openIdConnectProvider:OpenIdConnectProvider", f"{name}-oidcProvider",
                           f"{name}-oidcProvider-{d[:7]}",
                           {"url": f"https://{issuer}", "clientIdLists": ["sts.amazonaws.com"],
                            "arn": f"arn:{partition}:iam::{account}:oidc-provider/{issuer}"},
                           depends_on=[cluster.name]))
    for addon in ("vpc-cni", "kube-proxy"):
        state: dict[str, Any] = {"clusterName": cname, "addonName": addon}
        if addon == "vpc-cni":
            # cni-addon.ts mergeConfigurationValues: `vpcCniOptions.enableNetworkPolicy` becomes the add-on's
            # `enableNetworkPolicy` ("true"/"false") unless configurationValues already set it; the env defaults it
            # also writes (WARM_ENI_TARGET, log paths, ...) are not modelled.
            cni = inputs.get("vpcCniOptions") or {}
            config = dict(cni.get("configurationValues") or {})
            if "enableNetworkPolicy" not in config and cni.get("enableNetworkPolicy") is not None:
                config["enableNetworkPolicy"] = "true" if cni["enableNetworkPolicy"] else "false"
            state["configurationValues"] = json.dumps(config, sort_keys=True)
        out.append(Implied("aws:eks/addon:Addon", f"{name}-{addon}", f"{cname}:{addon}", state,
                           depends_on=[cluster.name]))
    for key, entry in (inputs.get("accessEntries") or {}).items():
        entry_name = f"{name}-{key}"
        out.append(Implied("aws:eks/accessEntry:AccessEntry", entry_name, f"{cname}:{entry.get('principalArn')}",
                           {"clusterName": cname, "principalArn": entry.get("principalArn"),
                            "type": entry.get("type", "STANDARD")}, depends_on=[cluster.name]))
        for pkey, policy in (entry.get("accessPolicies") or {}).items():
            out.append(Implied("aws:eks/accessPolicyAssociation:AccessPolicyAssociation", f"{entry_name}-{pkey}",
                               f"{cname}#{entry.get('principalArn')}#{policy.get('policyArn')}",
                               {"clusterName": cname, "principalArn": entry.get("principalArn"),
                                "policyArn": policy.get("policyArn"), "accessScope": policy.get("accessScope")},
                               depends_on=[entry_name]))
    return out


def component_outputs(implied: list[Implied]) -> dict[str, Any]:
    """The plain outputs of `eks.Cluster` that depend on what it created (its own groups, not EKS's)."""
    by_name = {i.name.rsplit("-", 1)[-1]: i for i in implied}
    cluster_sg = by_name.get("eksClusterSecurityGroup")
    node_sg = by_name.get("nodeSecurityGroup")
    eks_sg = next(i for i in implied if i.created_by == BY_AWS)
    # With skipDefaultSecurityGroups both outputs are the EKS-created group (the SDK docstrings say so).
    return {
        "clusterSecurityGroupId": cluster_sg.id if cluster_sg else eks_sg.id,
        "nodeSecurityGroupId": node_sg.id if node_sg else eks_sg.id,
    }


def resource_outputs(implied: list[Implied]) -> dict[str, str]:
    """Output name -> the implied resource it is a reference to."""
    refs = {"eksCluster": "eksCluster", "clusterSecurityGroup": "eksClusterSecurityGroup",
            "nodeSecurityGroup": "nodeSecurityGroup"}
    found = {}
    for output, suffix in refs.items():
        for i in implied:
            if i.name.endswith(f"-{suffix}") and i.created_by == BY_COMPONENT:
                found[output] = i.name
    return found
