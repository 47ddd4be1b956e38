"""The AWS Load Balancer Controller v3.5.0: it makes the gateway's Network Load Balancer for a Service of class
`service.k8s.aws/nlb` (planning/endpoint.py), and deletes it again when that Service goes.

- IAM through EKS Pod Identity: a role trusted by `pods.eks.amazonaws.com` carrying the controller's own policy of
  its tag (data/aws-load-balancer-controller-iam-policy.json = docs/install/iam_policy.json @ v3.5.0, unchanged;
  tests/test_loadbalancer.py checks it is identical to ../shared/reference's copy), associated with its service
  account once the Pod Identity agent runs.
- The chart at its pin (planning/versions.py), with the cluster name, region and VPC given (the pods cannot read
  them from the instance metadata: IMDSv2 with a hop limit of 1 keeps pods off it), two replicas on Karpenter's
  CPU nodes (planning/workloads.py), at most one of them disrupted at a time, hardened containers.
- Its webhooks (chart templates/webhook.yaml @ v3.5.0), and what they mean while the controller is down:
  - the Service mutator (`mservice.elbv2.k8s.aws`, failurePolicy Fail, every namespace) only sets
    `spec.loadBalancerClass` on new Services of type LoadBalancer. We set the class ourselves, so it is switched
    off: with it on, no Service at all could be created in the cluster while both replicas are away (a spot
    interruption, a node replacement), the models' and the charts' included.
  - the pod readiness-gate mutator (`mpod.elbv2.k8s.aws`) acts only in namespaces labelled
    `elbv2.k8s.aws/pod-readiness-gate-inject: enabled` (failurePolicy Ignore, stated): such a namespace's pods are
    Ready only once their NLB target is healthy, so a rolling update never leaves the NLB without a healthy target.
    The QUIC and ALB target-control mutators act only in namespaces or pods labelled for them: none are.
  - TargetGroupBinding and IngressClassParams webhooks (failurePolicy Fail) see only those kinds, which only the
    controller itself writes for us.
- The controller's Gateway API controllers are switched off (feature gates NLBGatewayAPI, ALBGatewayAPI,
  GatewayListenerSet; on by default in v3, docs/deploy/configurations.md): Envoy Gateway runs the product's
  Gateway, and the controller needs only Services. Its ALB IngressClass is not created (no Ingress is used), and
  Shield/WAF lookups (ALB Ingress features) are off.
- Destroy: `load_balancers_released` (components/waiters.py) depends on the controller, its IAM and the CPU
  NodePool; whatever makes a Service of the class depends on it. So `pulumi destroy` deletes that first, then waits
  while the controller deletes the NLB and its security groups, then removes the controller, its nodes and the VPC.

Subnets need nothing more (docs/deploy/subnet_discovery.md @ v3.5.0): the controller takes subnets tagged
`kubernetes.io/role/elb` for an internet-facing NLB and `kubernetes.io/role/internal-elb` for an internal one, keeps
those whose `kubernetes.io/cluster/<name>` tag names its cluster (ours say `shared`) and that have 8 or more free
addresses, one per zone: components/network.py tags every public and private subnet so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.waiters import LoadBalancersReleased
from parts import helm
from planning import iam, versions
from planning.scheduling import CPU_POOL_AFFINITY
from planning.security import RESTRICTED_CONTAINER, RUNTIME_DEFAULT_SECCOMP
from planning.workloads import AWS_LOAD_BALANCER_CONTROLLER, AWS_LOAD_BALANCER_CONTROLLER_MEMORY_LIMIT_MIB

SERVICE_ACCOUNT = "aws-load-balancer-controller"
RELEASE_NAME = "aws-load-balancer-controller"
IAM_POLICY = Path(__file__).resolve().parent.parent / "data" / "aws-load-balancer-controller-iam-policy.json"
# The chart's name label, which its pod anti-affinity and webhooks' object selectors match on.
APP_NAME = "aws-load-balancer-controller"


def iam_policy(partition: str = "aws") -> dict[str, Any]:
    """The controller's IAM policy at its pinned tag, as upstream publishes it, its ARNs in `partition`. Upstream's
    GovCloud copy (docs/install/iam_policy_us-gov.json @ v3.5.0) is the same statements with `arn:aws-us-gov:` (and
    two in another order)."""
    return json.loads(IAM_POLICY.read_text().replace('"arn:aws:', f'"arn:{partition}:'))


def controller_values(cluster: str, region: str, vpc_id: pulumi.Input[str], tags: dict[str, str]) -> dict[str, Any]:
    """The chart's values; every key is in its values.yaml at 3.5.0 (tests/conformance.py checks it)."""
    requests = AWS_LOAD_BALANCER_CONTROLLER.main.as_k8s()
    return {
        "clusterName": cluster,
        "region": region,
        "vpcId": vpc_id,
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT},
        "replicaCount": AWS_LOAD_BALANCER_CONTROLLER.replicas,
        # one replica may go at a time (a node drain, consolidation); the other keeps the webhooks answering
        "podDisruptionBudget": {"maxUnavailable": 1},
        "resources": {"requests": requests,
                      "limits": {"memory": f"{AWS_LOAD_BALANCER_CONTROLLER_MEMORY_LIMIT_MIB}Mi"}},
        # Karpenter's CPU nodes, and the chart's default spreading of the replicas over nodes (given whole, since
        # `affinity` replaces the default)
        "affinity": {**CPU_POOL_AFFINITY, "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {
                "labelSelector": {"matchExpressions": [
                    {"key": "app.kubernetes.io/name", "operator": "In", "values": [APP_NAME]}]},
                "topologyKey": "kubernetes.io/hostname"}}]}},
        # The chart's defaults (fsGroup, read-only root, non-root, no escalation) plus what `restricted` asks.
        "podSecurityContext": {"fsGroup": 65534, "runAsNonRoot": True, "seccompProfile": RUNTIME_DEFAULT_SECCOMP},
        "securityContext": {**RESTRICTED_CONTAINER, "readOnlyRootFilesystem": True},
        "enableServiceMutatorWebhook": False,
        "podMutatorWebhookConfig": {"failurePolicy": "Ignore"},
        # keep the webhook certificate across upgrades (the chart generates a new one on each render otherwise)
        "keepTLSSecret": True,
        "createIngressClassResource": False,
        "ingressClassParams": {"create": False},
        "enableShield": False,
        "enableWaf": False,
        "enableWafv2": False,
        "controllerConfig": {"featureGates": {"NLBGatewayAPI": False, "ALBGatewayAPI": False,
                                              "GatewayListenerSet": False}},
        # on every NLB, target group and security group it makes: who made it, so a leftover is easy to find
        "defaultTags": tags,
    }


@dataclass
class LoadBalancerControllerArgs:
    cluster_name: str
    eks_cluster_name: pulumi.Input[str]  # the same name as an Output of the cluster: what needs the cluster waits
    region: str
    partition: str
    vpc_id: pulumi.Input[str]
    kubeconfig: pulumi.Input[str]  # a secret; the waiter lists Services with it on destroy
    # The cluster's Pod Identity agent: the association waits for it, so the controller starts with credentials.
    pod_identity_agent: aws.eks.Addon
    cpu_node_pool: pulumi.Resource  # where it runs: created before it, deleted after it
    # the program's own tags (project, stack, cluster): no ',' or '=' in them, as the chart's flag needs
    tags: dict[str, str] = field(default_factory=dict)


class LoadBalancerController(pulumi.ComponentResource):
    """AWS Load Balancer Controller with its Pod Identity IAM, and `load_balancers_released`, which everything
    that makes a Service of class `service.k8s.aws/nlb` must depend on."""

    role: aws.iam.Role
    release: k8s.helm.v3.Release
    load_balancers_released: LoadBalancersReleased

    def __init__(self, name: str, args: LoadBalancerControllerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:LoadBalancerController", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.role = aws.iam.Role(
            f"{name}-role", assume_role_policy=iam.to_json(iam.pod_identity_trust()),
            description=f"AWS Load Balancer Controller of {args.cluster_name}", opts=child,
        )
        policy = aws.iam.Policy(
            f"{name}-policy", description=f"AWS Load Balancer Controller v3.5.0 of {args.cluster_name}",
            policy=iam.to_json(iam_policy(args.partition)), opts=child,
        )
        attachment = aws.iam.RolePolicyAttachment(f"{name}-policy", role=self.role.name, policy_arn=policy.arn,
                                                  opts=child)
        pod_identity = aws.eks.PodIdentityAssociation(
            f"{name}-controller", cluster_name=args.eks_cluster_name,
            namespace=versions.AWS_LOAD_BALANCER_CONTROLLER_NAMESPACE, service_account=SERVICE_ACCOUNT,
            role_arn=self.role.arn, opts=pulumi.ResourceOptions(parent=self, depends_on=[args.pod_identity_agent]),
        )
        self.release = helm.release(
            f"{name}-controller", versions.AWS_LOAD_BALANCER_CONTROLLER, name=RELEASE_NAME,
            namespace=versions.AWS_LOAD_BALANCER_CONTROLLER_NAMESPACE,
            values=controller_values(args.cluster_name, args.region, args.vpc_id, args.tags),
            parent=self,
            # its credentials exist before it starts, and on destroy it outlives them: it deletes NLBs with them
            depends_on=[pod_identity, attachment, args.cpu_node_pool],
        )
        # Destroy: what makes Services of its class depends on this, this on the controller and its IAM (and through
        # them the NodePool, nodes and VPC), so their NLBs are deleted while all of that still exists.
        self.load_balancers_released = LoadBalancersReleased(
            f"{name}-load-balancers-released",
            cluster_name=args.cluster_name,
            kubeconfig=args.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release, pod_identity, attachment, policy,
                                                                 self.role]),
        )
        self.register_outputs({"role_arn": self.role.arn})
