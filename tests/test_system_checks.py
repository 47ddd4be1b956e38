"""The system checks (tools/checks.py) and the model of what pulumi-eks creates (tools/opaque.py).

Each check passes on the real plans and catches a planted instance of the defect it exists for: the planted
defects are the ones a review found in this program (issue 11), made again on a copy of the plan.
"""

from __future__ import annotations

import copy

import pytest

from tests.conftest import KARPENTER, NIM_MODEL, STORAGE, obj, plan_for, release
from tools import checks, opaque, plan as plan_cli
from tools.mockrun import Plan

PLANS = [
    (),
    ('nim_models=[{"name": "meta/llama3-8b-instruct", "max_replicas": 2}, '
     '{"name": "meta/llama-3.1-70b-instruct", "gpus": 4, "capacity_types": ["on-demand"]}]',
     'gpu_instance_families=["g6e", "p4de", "p5"]', "gpu_limit=64"),
    ("monitoring=false", "open_webui=false", "aiperf=true"),
    ("single_nat_gateway=false", "availability_zones=2", 'cluster_admins=["arn:aws:iam::123456789012:role/ops"]'),
]


@pytest.mark.parametrize("overrides", PLANS, ids=["dev", "two-models", "lean", "nat-per-az"])
def test_real_plans_pass_every_check(overrides):
    plan = plan_for(*overrides)
    assert plan.error is None, plan.error
    assert checks.all_problems(plan) == {"references": [], "reachability": [], "destroy": []}


def planted(plan: Plan) -> Plan:
    """A copy of the plan to plant a defect in."""
    return copy.deepcopy(plan)


# ------------------------------------------------------------------------------------------- opaque mocks


def test_pulumi_eks_groups_differ_from_the_eks_created_group(dev_plan):
    """pulumi-eks's cluster_security_group_id is its own additional group, not the one EKS creates."""
    eks = dev_plan.one("eks:index:Cluster")
    [cluster] = dev_plan.of_type("aws:eks/cluster:Cluster")
    [eks_created] = [r for r in dev_plan.of_type("aws:ec2/securityGroup:SecurityGroup") if r.created_by == opaque.BY_AWS]
    own = {r.name.rsplit("-", 1)[-1]: r for r in dev_plan.of_type("aws:ec2/securityGroup:SecurityGroup")
           if r.created_by == opaque.BY_COMPONENT}
    assert set(own) == {"eksClusterSecurityGroup", "nodeSecurityGroup"}
    assert eks.outputs["clusterSecurityGroupId"] == own["eksClusterSecurityGroup"].id != eks_created.id
    assert eks.outputs["nodeSecurityGroupId"] == own["nodeSecurityGroup"].id != eks_created.id
    assert cluster.inputs["vpcConfig"]["clusterSecurityGroupId"] == eks_created.id
    assert cluster.inputs["vpcConfig"]["securityGroupIds"] == [own["eksClusterSecurityGroup"].id]
    # the only way in to pulumi-eks's cluster group is 443 from its node group
    rules = checks._rules(dev_plan)[own["eksClusterSecurityGroup"].id]
    assert [(r.direction, r.protocol, r.from_port, r.to_port, r.peers) for r in rules if r.direction == "ingress"] == [
        ("ingress", "tcp", 443, 443, frozenset({own["nodeSecurityGroup"].id}))]


def test_pulumi_eks_creates_the_oidc_provider_role_and_add_ons(dev_plan):
    eks = dev_plan.one("eks:index:Cluster")
    inside = {r.type for r in dev_plan.resources if r.parent == eks.urn}
    assert {"aws:eks/cluster:Cluster", "aws:iam/role:Role", "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
            "aws:eks/addon:Addon"} <= inside
    oidc = dev_plan.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert eks.outputs["oidcProviderArn"] == oidc.outputs["arn"]
    # an access entry per cluster_admins item, inside the component
    plan = plan_for('cluster_admins=["arn:aws:iam::123456789012:role/ops"]')
    [entry] = [r for r in plan.of_type("aws:eks/accessEntry:AccessEntry") if r.implied]
    assert entry.inputs["principalArn"] == "arn:aws:iam::123456789012:role/ops"


def test_the_eks_cluster_output_is_a_reference_that_orders_its_users(dev_plan):
    """Outputs read from the inner aws.eks.Cluster (name, security group) carry a dependency on it."""
    [cluster] = dev_plan.of_type("aws:eks/cluster:Cluster")
    node_group = dev_plan.one("aws:eks/nodeGroup:NodeGroup")
    assert node_group.inputs["clusterName"] == cluster.inputs["name"]
    assert cluster.urn in node_group.dependencies


# ------------------------------------------------------------------------------------------- references


def test_references_catch_a_retyped_cluster_name(dev_plan):
    """Issue 11 defect 2: the Karpenter node access entry got the cluster name as a plain string."""
    plan = planted(dev_plan)
    [entry] = plan.within(KARPENTER, type_="aws:eks/accessEntry:AccessEntry")
    [role] = [r for r in plan.within(KARPENTER, type_="aws:iam/role:Role")
              if r.outputs["arn"] == entry.inputs["principalArn"]]  # the role whose nodes the entry admits
    entry.dependencies = [role.urn]  # the role ARN is still an Output; the cluster name is re-typed
    [problem] = checks.reference_problems(plan)
    assert problem.startswith("aws:eks/accessEntry:AccessEntry nim-on-eks-dev-karpenter-node: clusterName names "
                              "nim-on-eks-dev, made by aws:eks/cluster:Cluster")


def test_references_catch_a_namespace_secret_and_storage_class_nobody_waits_for(dev_plan):
    plan = planted(dev_plan)
    [sts] = plan.within(NIM_MODEL, type_="kubernetes:apps/v1:StatefulSet")
    sts.dependencies = []
    sts.provider = ""
    found = "\n".join(checks.reference_problems(plan))
    assert "metadata.namespace names Namespace nim" in found
    assert "imagePullSecrets.name names Secret nim/ngc-secret" in found
    assert "secretKeyRef.name names Secret nim/ngc-api" in found
    assert "claimName names PersistentVolumeClaim nim/nim-llm-llama3-8b-instruct-cache" in found


def test_references_in_helm_values(dev_plan):
    plan = planted(dev_plan)
    stack = release(plan, "kube-prometheus-stack")
    stack.dependencies = []
    found = "\n".join(checks.reference_problems(plan))
    assert "storageClassName names StorageClass gp3" in found
    assert "existingSecret names Secret monitoring/grafana-admin" in found


def test_tags_and_descriptions_are_not_references(dev_plan):
    """Subnets carry the cluster name in discovery tags before the cluster exists: that is not a reference."""
    subnet = next(s for s in dev_plan.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name)
    assert subnet.inputs["tags"]["karpenter.sh/discovery"] == "nim-on-eks-dev"
    assert not any(subnet.name in p for p in checks.reference_problems(dev_plan))


# ------------------------------------------------------------------------------------------ reachability


def test_reachability_catches_karpenter_nodes_on_pulumi_eks_group(dev_plan):
    """Issue 11 defect 1: the discovery tag on pulumi-eks's cluster group, so Karpenter's nodes get that group."""
    plan = planted(dev_plan)
    tag = plan.one("aws:ec2/tag:Tag")
    tag.inputs["resourceId"] = plan.one("eks:index:Cluster").outputs["clusterSecurityGroupId"]
    found = checks.reachability_problems(plan)
    gpu = "Karpenter nodes of EC2NodeClass gpu"
    assert f"nodes reach the API server: tcp/443 from {gpu} to the control plane (API server ENIs) is not allowed " \
           "by their security groups" in found
    assert any(p.startswith("the control plane reaches the kubelet: tcp/10250 from the control plane") and gpu in p
               for p in found)
    assert any(p.startswith("pods reach CoreDNS: udp/53 from Karpenter nodes of EC2NodeClass gpu to managed node group")
               for p in found)


def test_reachability_catches_efs_closed_to_the_nodes(dev_plan):
    plan = planted(dev_plan)
    [efs_sg] = plan.within(STORAGE, type_="aws:ec2/securityGroup:SecurityGroup")
    efs_sg.inputs["ingress"][0]["fromPort"] = efs_sg.inputs["ingress"][0]["toPort"] = 2048
    found = checks.reachability_problems(plan)
    assert len([p for p in found if p.startswith("nodes mount the EFS model cache: tcp/2049")]) == 3 * 3  # 3 pools, 3 AZs


def test_reachability_catches_a_selector_that_selects_nothing(dev_plan):
    plan = planted(dev_plan)
    plan.resources = [r for r in plan.resources if r.type != "aws:ec2/tag:Tag"]
    found = checks.reachability_problems(plan)
    assert "Karpenter nodes of EC2NodeClass gpu: securityGroupSelectorTerms select no security group of the stack" in found


def test_flow_evaluation_is_stateful_and_needs_both_sides():
    web = checks.Endpoint("a", {"sg-a"}, ["10.0.0.0/18"])
    db = checks.Endpoint("b", {"sg-b"}, ["10.0.64.0/18"])
    egress = checks.Rule("egress", "-1", 0, 0, cidrs=("0.0.0.0/0",))
    rules = {"sg-a": [egress], "sg-b": [checks.Rule("ingress", "tcp", 2049, 2049, cidrs=("10.0.0.0/16",))]}
    assert checks.allowed(rules, web, db, "tcp", 2049)
    assert not checks.allowed(rules, web, db, "tcp", 2050)
    assert not checks.allowed(rules, web, db, "udp", 2049)
    assert not checks.allowed({"sg-b": rules["sg-b"]}, web, db, "tcp", 2049)  # no egress on the source
    narrow = {"sg-a": [egress], "sg-b": [checks.Rule("ingress", "tcp", 2049, 2049, cidrs=("10.0.64.0/18",))]}
    assert not checks.allowed(narrow, web, db, "tcp", 2049)  # the source's range is outside the rule's CIDR
    by_group = {"sg-a": [egress], "sg-b": [checks.Rule("ingress", "tcp", 2049, 2049, peers=frozenset({"sg-a"}))]}
    assert checks.allowed(by_group, web, db, "tcp", 2049)


# ---------------------------------------------------------------------------------------------- destroy


def test_destroy_order_deletes_dependents_first(dev_plan):
    waves = checks.destroy_waves(dev_plan)
    position = {r.urn: i for i, wave in enumerate(waves) for r in wave}
    for r in dev_plan.resources:
        if r.urn not in position:
            assert r.created_by == opaque.BY_AWS
            continue
        for dep in r.dependencies:
            if dep in position:
                assert position[r.urn] < position[dep], f"{r.name} must be deleted before {dep}"
    cluster = dev_plan.one("aws:eks/cluster:Cluster")
    for pool in dev_plan.of_type("kubernetes:karpenter.sh/v1:NodePool"):
        assert position[pool.urn] < position[cluster.urn]


def test_destroy_catches_the_network_going_before_the_controllers(dev_plan):
    """Found by this check: NAT and routes had no dependents, so destroy deleted them first, while Karpenter and
    the CSI drivers still had to call EC2 to terminate nodes and delete volumes."""
    plan = planted(dev_plan)
    node_group = plan.one("aws:eks/nodeGroup:NodeGroup")
    egress = {r.urn for r in checks.egress_path(plan)}
    assert egress and egress <= set(node_group.dependencies)
    node_group.dependencies = [d for d in node_group.dependencies if d not in egress]
    found = checks.destroy_problems(plan)
    assert any(p.startswith("Karpenter terminates the nodes of NodePool gpu: it needs NatGateway") for p in found)
    assert any(p.startswith("the ebs.csi.aws.com driver deletes the volumes of Release") for p in found)


def test_destroy_catches_a_node_class_that_does_not_wait_for_the_controller(dev_plan):
    plan = planted(dev_plan)
    node_class = obj(plan, "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", "gpu")
    controller = release(plan, "karpenter")
    node_class.dependencies = [d for d in node_class.dependencies if d != controller.urn]
    node_class.provider = ""
    found = checks.destroy_problems(plan)
    assert any(p.startswith("Karpenter terminates the nodes of NodePool gpu: it needs Release "
                            "nim-on-eks-dev-karpenter-controller") for p in found)


def test_destroy_catches_volumes_nobody_waits_for(dev_plan):
    plan = planted(dev_plan)
    plan.resources = [r for r in plan.resources if not r.name.endswith(checks.WAITER_SUFFIX)]
    found = checks.destroy_problems(plan)
    assert any(p.startswith("the ebs.csi.aws.com driver deletes the volumes of Release "
                            "nim-on-eks-dev-monitoring-kube-prometheus-stack (StorageClass gp3): nothing waits")
               for p in found)
    assert any(p.startswith("the efs.csi.aws.com driver deletes the volumes of PersistentVolumeClaim") for p in found)


def test_destroy_deletes_the_cache_job_and_its_volume_before_the_file_system(dev_plan):
    """Issue 13: the pre-cache Job's pods mount the model's EFS cache; the Job, then the claim, then the waiter go
    before the EFS driver, mount targets and file system."""
    waves = checks.destroy_waves(dev_plan)
    position = {r.urn: i for i, wave in enumerate(waves) for r in wave}
    job = obj(dev_plan, "kubernetes:batch/v1:Job", "nim-llm-llama3-8b-instruct-precache")
    claim = obj(dev_plan, "kubernetes:core/v1:PersistentVolumeClaim", "nim-llm-llama3-8b-instruct-cache")
    [waiter] = [r for r in dev_plan.resources if r.name.endswith(checks.WAITER_SUFFIX)]
    efs = [dev_plan.one("aws:efs/fileSystem:FileSystem"), *dev_plan.of_type("aws:efs/mountTarget:MountTarget"),
           *(a for a in dev_plan.of_type("aws:eks/addon:Addon") if a.inputs.get("addonName") == "aws-efs-csi-driver")]
    assert position[job.urn] < position[claim.urn] < position[waiter.urn] < min(position[r.urn] for r in efs)


def test_destroy_catches_a_cache_job_that_outlives_the_volume_wait(dev_plan):
    """Planted: the Job waits for nothing but its provider, so destroy may delete the waiter (and then the EFS
    driver and file system) while the Job's pods still hold the cache."""
    plan = planted(dev_plan)
    job = obj(plan, "kubernetes:batch/v1:Job", "nim-llm-llama3-8b-instruct-precache")
    job.dependencies = []
    found = checks.destroy_problems(plan)
    assert any(p.startswith("the pods of Job nim-on-eks-dev-nim-llm-llama3-8b-instruct-precache release claim "
                            "nim/nim-llm-llama3-8b-instruct-cache") and
               "nim-on-eks-dev-storage-volumes-released waits for it but can be deleted before" in p
               for p in found), found


SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
ROUTE = "kubernetes:http.keda.sh/v1beta1:InterceptorRoute"
DEV_MODEL = "nim-llm-llama3-8b-instruct"


def test_scalers_go_before_their_targets_and_before_keda(dev_plan):
    waves = checks.destroy_waves(dev_plan)
    position = {r.urn: i for i, wave in enumerate(waves) for r in wave}
    scaled, statefulset = obj(dev_plan, SCALED_OBJECT, DEV_MODEL), obj(dev_plan, "kubernetes:apps/v1:StatefulSet",
                                                                       DEV_MODEL)
    route = obj(dev_plan, ROUTE, DEV_MODEL)
    keda, add_on = release(dev_plan, "keda"), release(dev_plan, "keda-add-ons-http")
    # research §8 (KEDA 2.20, HTTP add-on 0.15): ScaledObject, then its route, then the add-on, then KEDA
    assert position[scaled.urn] < position[route.urn] < position[add_on.urn] < position[keda.urn]
    assert position[scaled.urn] < position[statefulset.urn]


def test_destroy_catches_a_scaler_that_can_outlive_its_target(dev_plan):
    """The ScaledObject depending on KEDA alone: destroy may delete the StatefulSet first, and the route it reads."""
    plan = planted(dev_plan)
    scaled = obj(plan, SCALED_OBJECT, DEV_MODEL)
    scaled.dependencies = [release(plan, "keda").urn, release(plan, "keda-add-ons-http").urn]
    found = checks.destroy_problems(plan)
    assert found == [
        f"ScaledObject {scaled.name}: does not depend on its target nim-on-eks-dev-{DEV_MODEL}-sts, so destroy can "
        "delete the target first while KEDA still scales it",
        f"ScaledObject {scaled.name}: does not depend on InterceptorRoute nim-on-eks-dev-{DEV_MODEL}-scaling-route it "
        "reads"], found


def test_destroy_catches_a_scaler_that_can_outlive_keda(dev_plan):
    """The ScaledObject depending on its target alone: KEDA (and the add-on) may go first, and with them the only
    controller that removes the ScaledObject's finalizer."""
    plan = planted(dev_plan)
    scaled = obj(plan, SCALED_OBJECT, DEV_MODEL)
    scaled.dependencies = [obj(plan, "kubernetes:apps/v1:StatefulSet", DEV_MODEL).urn]
    found = checks.destroy_problems(plan)
    assert [p.split(": ", 1)[1] for p in found] == [
        "KEDA (which removes its finalizer) can be deleted before it",
        f"does not depend on InterceptorRoute nim-on-eks-dev-{DEV_MODEL}-scaling-route it reads",
        "the HTTP add-on (whose scaler its trigger asks) can be deleted before it"], found


def test_destroy_catches_the_add_on_outliving_keda_and_a_route_outliving_the_add_on(dev_plan):
    plan = planted(dev_plan)
    add_on, keda = release(plan, "keda-add-ons-http"), release(plan, "keda")
    add_on.dependencies = [d for d in add_on.dependencies if d != keda.urn]
    route = obj(plan, ROUTE, f"{DEV_MODEL}-models")
    route.dependencies = [obj(plan, "kubernetes:apps/v1:StatefulSet", DEV_MODEL).urn]
    found = checks.destroy_problems(plan)
    assert found == [f"InterceptorRoute {route.name}: the HTTP add-on can be deleted before it",
                     f"Release {add_on.name}: KEDA (which removes the finalizer of the add-on's own ScaledObject) can "
                     "be deleted before it"], found


def test_destroy_catches_a_scaler_that_restores_replicas(dev_plan):
    plan = planted(dev_plan)
    scaled = obj(plan, SCALED_OBJECT, DEV_MODEL)
    scaled.inputs["spec"]["advanced"]["restoreToOriginalReplicaCount"] = True
    assert [p.split(": ", 1)[1] for p in checks.destroy_problems(plan)] == [
        "restoreToOriginalReplicaCount scales its target back up when it is deleted (a model at zero would get a GPU "
        "node mid-destroy)"]


def test_destroy_catches_a_scaler_of_nothing(dev_plan):
    plan = planted(dev_plan)
    scaled = obj(plan, SCALED_OBJECT, DEV_MODEL)
    scaled.inputs["spec"]["scaleTargetRef"]["kind"] = "Deployment"  # the StatefulSet is meant
    assert checks.destroy_problems(plan) == [
        f"ScaledObject {scaled.name}: scales Deployment nim/{DEV_MODEL}, which the stack does not create"]


# ----------------------------------------------------------------------------------------- offline plan


def test_the_plan_prints_the_checks_and_the_destroy_order(capsys):
    assert plan_cli.main(["--destroy"]) == 0
    out = capsys.readouterr().out
    assert "references    OK" in out and "reachability  OK" in out and "destroy       OK" in out
    order = out[out.index("Destroy order"):]
    # the waiter names every deletion it waits for: both Open WebUI's and Prometheus's EBS volumes, the EFS cache, and
    # the workloads whose pods mount a claim (Open WebUI, the model's StatefulSet and its pre-cache Job)
    waits = [line for line in order.splitlines() if "storage-volumes-released is deleted only once done" in line]
    assert len(waits) == 6 and sum("ebs.csi.aws.com" in w for w in waits) == 3, waits
    assert sum("release claim nim/nim-llm-llama3-8b-instruct-cache" in w for w in waits) == 2, waits
    assert order.index("NodePool nim-on-eks-dev-karpenter-gpu-pool") < order.index(
        "EC2NodeClass nim-on-eks-dev-karpenter-gpu-class") < order.index("Release nim-on-eks-dev-karpenter-controller")


def test_the_plan_fails_on_a_failed_check(monkeypatch, capsys):
    monkeypatch.setitem(checks.CHECKS, "references", lambda plan: ["planted problem"])
    assert plan_cli.main([]) == 1
    out, err = capsys.readouterr()
    assert "references    FAILED" in out and "references: planted problem" in out
    assert "a system check failed" in err


# ------------------------------------------------------------------------- load balancers (issue 14)

LB_WAITER = "nim-on-eks-dev-load-balancer-load-balancers-released"
LB_CLEANUP = "the AWS Load Balancer Controller deletes the NLBs of the Services of class service.k8s.aws/nlb"


GW_WAITER = "nim-on-eks-dev-gateway-load-balancers-released"
GATEWAY = ("kubernetes:gateway.networking.k8s.io/v1:Gateway", "nim-on-eks-dev-gateway-gateway")
ENVOY_PROXY = ("kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy", "nim-on-eks-dev-gateway-envoy-proxy")


def test_the_gateway_goes_then_the_nlbs_then_the_controller_nodes_and_vpc(dev_plan):
    """The destroy simulation of issue 14, on the plan itself: what makes the gateway's Service (the Gateway, its
    EnvoyProxy), then the gateway's wait for the NLB (while Envoy Gateway deletes the Service and the controller the
    NLB), then Envoy Gateway and the controller, the CPU NodePool, the cluster and the subnets."""
    assert checks.destroy_problems(dev_plan) == []
    position = {r.urn: i for i, wave in enumerate(checks.destroy_waves(dev_plan)) for r in wave}
    gateway, proxy = dev_plan.one(*GATEWAY), dev_plan.one(*ENVOY_PROXY)
    waiter = dev_plan.one("pulumi-python:dynamic/waiters:LoadBalancersReleased", GW_WAITER)
    eg, controller = release(dev_plan, "eg"), release(dev_plan, "aws-load-balancer-controller")
    pool = obj(dev_plan, "kubernetes:karpenter.sh/v1:NodePool", "cpu")
    cluster = dev_plan.one("aws:eks/cluster:Cluster")
    subnets = dev_plan.of_type("aws:ec2/subnet:Subnet")
    assert max(position[gateway.urn], position[proxy.urn]) < position[waiter.urn] \
        < min(position[eg.urn], position[controller.urn])
    assert position[controller.urn] < position[pool.urn] < position[cluster.urn] < min(position[s.urn] for s in subnets)
    assert any(f"{GW_WAITER} is deleted only once done: the NLB of the Service that Gateway "
               "nim-on-eks-dev-gateway-gateway makes" in line for line in checks.render_destroy(dev_plan))


def test_destroy_catches_a_gateway_that_does_not_wait_for_its_nlb(dev_plan):
    plan = planted(dev_plan)
    for r in plan.resources:  # neither the Gateway nor what it waits for (its class, EnvoyProxy) waits any more
        if r.type.startswith(("kubernetes:gateway.", "kubernetes:aigateway.")):
            r.dependencies = [d for d in r.dependencies if not d.endswith("-load-balancers-released")]
    found = checks.destroy_problems(plan)
    assert any(p.startswith("the NLB of the Service that Gateway nim-on-eks-dev-gateway-gateway makes is deleted by "
                            "the AWS Load Balancer Controller") for p in found), found


def test_destroy_catches_an_object_naming_the_class_that_does_not_wait(dev_plan):
    """An EnvoyProxy (or anything) that puts `service.k8s.aws/nlb` on a Service counts as making one."""
    plan = planted(dev_plan)
    proxy = plan.one("kubernetes:core/v1:Service", "nim-on-eks-dev-open-webui-svc")
    proxy.type = "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy"
    proxy.inputs["spec"] = {"provider": {"kubernetes": {"envoyService": {"loadBalancerClass": "service.k8s.aws/nlb"}}}}
    found = checks.destroy_problems(plan)
    assert any(p.startswith("the NLB of the Service that EnvoyProxy nim-on-eks-dev-open-webui-svc makes") for p in found)


def test_destroy_catches_nlbs_nobody_waits_for(dev_plan):
    """Without the waiters the controller, its nodes and the VPC may go while the NLB still exists: its security
    groups and network interfaces then keep the subnets and VPC from being deleted."""
    plan = planted(dev_plan)
    plan.resources = [r for r in plan.resources if r.name not in (LB_WAITER, GW_WAITER)]
    for r in plan.resources:
        r.dependencies = [d for d in r.dependencies if not d.endswith("-load-balancers-released")]
    found = checks.destroy_problems(plan)
    assert any(p.startswith(LB_CLEANUP) and "nothing waits for it on destroy" in p for p in found), found


def test_destroy_catches_a_waiter_that_outlives_the_controller(dev_plan):
    plan = planted(dev_plan)
    waiter = plan.one("pulumi-python:dynamic/waiters:LoadBalancersReleased", LB_WAITER)
    waiter.dependencies = []
    found = checks.destroy_problems(plan)
    [problem] = [p for p in found if p.startswith(LB_CLEANUP)]
    assert "it needs Release nim-on-eks-dev-load-balancer-controller, PodIdentityAssociation " \
           "nim-on-eks-dev-load-balancer-controller, Role nim-on-eks-dev-load-balancer-role" in problem


def test_destroy_catches_envoy_gateway_going_before_the_nlb_wait(dev_plan):
    """Envoy Gateway deletes the Gateway's Service: gone before the wait, it would leave the Service (and the NLB)
    behind, and the wait time out."""
    plan = planted(dev_plan)
    waiter = plan.one("pulumi-python:dynamic/waiters:LoadBalancersReleased", GW_WAITER)
    eg = release(plan, "eg")
    waiter.dependencies = [d for d in waiter.dependencies if d != eg.urn]
    found = checks.destroy_problems(plan)
    assert any(p.startswith("the NLB of the Service that Gateway nim-on-eks-dev-gateway-gateway makes") and
               f"it needs Release {eg.name}, " in p for p in found), found