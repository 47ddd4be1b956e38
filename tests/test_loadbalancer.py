"""The AWS Load Balancer Controller (components/loadbalancer.py) and how the gateway is exposed (planning/endpoint.py):
its IAM through Pod Identity and the upstream policy, the chart's values and its real render, the NLB Service
annotations and listeners, and the `public_endpoint` / `certificate_arn` keys."""

from __future__ import annotations

import json

import pytest

from components import loadbalancer
from planning import versions
from planning.endpoint import (LOAD_BALANCER_CLASS, SERVICE_FINALIZER, TLS_POLICY, Listener, endpoint_warnings,
                               nlb_listeners, nlb_service_annotations, nlb_source_cidrs)
from planning.scheduling import CPU_POOL_AFFINITY
from planning.workloads import AWS_LOAD_BALANCER_CONTROLLER, CPU_POOL
from components import waiters
from tests import conformance, helm_render
from tests.conftest import needs_charts, attached_to, needs_reference, parse, plan_for, problems, release

LB = "nim-on-eks:index:LoadBalancerController"
NAME = "nim-on-eks-dev-load-balancer"
CERT = "arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
A = "service.beta.kubernetes.io/aws-load-balancer-"



# ------------------------------------------------------------------------------------------------------- IAM


@needs_reference
def test_the_iam_policy_is_upstreams_at_the_pinned_tag():
    ours = loadbalancer.IAM_POLICY.read_bytes()
    upstream = (conformance.REFERENCE / "aws-load-balancer-controller-3.5.0" / "iam_policy.json").read_bytes()
    assert ours == upstream


def test_the_policy_takes_the_partition():
    gov = json.dumps(loadbalancer.iam_policy("aws-us-gov"))
    assert '"arn:aws:' not in gov and gov.count('"arn:aws-us-gov:') == json.dumps(loadbalancer.iam_policy()).count(
        '"arn:aws:') > 0
    # the statements are upstream's otherwise
    assert len(loadbalancer.iam_policy("aws-us-gov")["Statement"]) == len(loadbalancer.iam_policy()["Statement"])


def test_controller_identity_is_pod_identity(dev_plan):
    role = dev_plan.one("aws:iam/role:Role", f"{NAME}-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": ["pods.eks.amazonaws.com"]}
    assert trust["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assoc = dev_plan.one("aws:eks/podIdentityAssociation:PodIdentityAssociation", f"{NAME}-controller")
    assert (assoc.inputs["namespace"], assoc.inputs["serviceAccount"]) == ("kube-system", "aws-load-balancer-controller")
    assert assoc.inputs["roleArn"] == role.outputs["arn"]
    agent = dev_plan.one("aws:eks/addon:Addon", "nim-on-eks-dev-pod-identity-agent")
    assert dev_plan.depends_on(assoc, agent)  # the controller starts with credentials
    [attachment] = attached_to(dev_plan, role)
    policy = dev_plan.one("aws:iam/policy:Policy", f"{NAME}-policy")
    assert attachment.inputs["policyArn"] == policy.outputs["arn"]
    assert json.loads(policy.inputs["policy"]) == loadbalancer.iam_policy()
    lint = conformance.lint_policy(json.loads(policy.inputs["policy"]))
    assert lint == [], lint


def test_the_linter_still_catches_an_unknown_elb_action():
    """The two findings allowed for the controller's policy (parliament's database predates them) allow nothing
    else."""
    bad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",
                                                   "Action": ["elasticloadbalancing:ModifyIpPoolz"]}]}
    assert any("UNKNOWN_ACTION" in p for p in conformance.lint_policy(bad))


# ------------------------------------------------------------------------------------------------ the release


def values_of(plan):
    return release(plan, "aws-load-balancer-controller").inputs["values"]


def test_release_is_pinned_and_configured(dev_plan):
    r = release(dev_plan, "aws-load-balancer-controller")
    assert (r.inputs["chart"], r.inputs["version"]) == ("aws-load-balancer-controller", "3.5.0")
    assert r.inputs["repositoryOpts"] == {"repo": "https://aws.github.io/eks-charts"}
    assert r.inputs["namespace"] == "kube-system"
    v = r.inputs["values"]
    vpc = dev_plan.one("aws:ec2/vpc:Vpc")
    # no IMDS for pods (hop limit 1): everything the controller would read there is given
    assert (v["clusterName"], v["region"], v["vpcId"]) == ("nim-on-eks-dev", "us-west-2", vpc.id)
    assert v["serviceAccount"]["name"] == "aws-load-balancer-controller"
    # a Service of any kind could not be created in the cluster while the controller is away
    assert v["enableServiceMutatorWebhook"] is False
    assert v["podMutatorWebhookConfig"] == {"failurePolicy": "Ignore"}
    assert v["controllerConfig"]["featureGates"] == {"NLBGatewayAPI": False, "ALBGatewayAPI": False,
                                                    "GatewayListenerSet": False}
    assert v["replicaCount"] == 2 and v["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert v["defaultTags"] == {"project": "nim-on-eks", "stack": "dev", "nim-on-eks/cluster": "nim-on-eks-dev"}


def test_it_runs_on_the_cpu_pool_with_the_pool_tables_requests(dev_plan):
    v = values_of(dev_plan)
    assert v["affinity"]["nodeAffinity"] == CPU_POOL_AFFINITY["nodeAffinity"]
    assert "tolerations" not in v and "nodeSelector" not in v  # never the core's taint, never a GPU node
    assert CPU_POOL["aws-load-balancer-controller"] is AWS_LOAD_BALANCER_CONTROLLER
    assert v["resources"]["requests"] == {"cpu": "25m", "memory": "128Mi"}
    pool = dev_plan.one("kubernetes:karpenter.sh/v1:NodePool", "nim-on-eks-dev-karpenter-cpu-pool")
    assert dev_plan.depends_on(release(dev_plan, "aws-load-balancer-controller"), pool)


def test_its_image_is_multi_arch():
    arches, source = versions.IMAGE_ARCHES[versions.AWS_LOAD_BALANCER_CONTROLLER_IMAGE]
    assert set(arches) >= {"amd64", "arm64"} and "IMG_PLATFORM" in source


def rendered_chart(plan, helm) -> list[dict]:
    r = release(plan, "aws-load-balancer-controller")
    folder = helm_render.chart_folder("aws-load-balancer-controller", "3.5.0")
    return helm_render.render(helm, folder, name=r.inputs["name"], namespace=r.inputs["namespace"],
                              values=helm_render.release_values(r)[0], kube_version=versions.DEFAULT_EKS_VERSION)


def of_kind(manifests, kind):
    return [m for m in manifests if m.get("kind") == kind]


@needs_charts
def test_the_rendered_chart(dev_plan, helm):
    manifests = rendered_chart(dev_plan, helm)
    [deployment] = of_kind(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == versions.AWS_LOAD_BALANCER_CONTROLLER_IMAGE
    args = set(container["args"])
    assert {"--cluster-name=nim-on-eks-dev", "--aws-region=us-west-2", "--enable-shield=false",
            "--enable-waf=false", "--enable-wafv2=false"} <= args
    assert any(a.startswith("--aws-vpc-id=") for a in args)
    gates = next(a for a in args if a.startswith("--feature-gates="))
    assert set(gates.removeprefix("--feature-gates=").split(",")) == {
        "NLBGatewayAPI=false", "ALBGatewayAPI=false", "GatewayListenerSet=false"}
    # hardened: what Pod Security `restricted` asks, and a read-only root
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"] == {"requests": {"cpu": "25m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    assert pod["serviceAccountName"] == "aws-load-balancer-controller"
    [pdb] = of_kind(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    # webhooks: no Service mutator; the pod mutators only where a namespace or pod asks for them
    [mutating] = of_kind(manifests, "MutatingWebhookConfiguration")
    hooks = {h["name"]: h for h in mutating["webhooks"]}
    assert "mservice.elbv2.k8s.aws" not in hooks
    assert hooks["mpod.elbv2.k8s.aws"]["failurePolicy"] == "Ignore"
    for name, hook in hooks.items():
        selects = hook.get("namespaceSelector") or hook.get("objectSelector", {}).get("matchLabels") or (
            hook["rules"][0]["resources"] != ["pods"])
        assert selects, f"{name} would act on every pod"
    assert not of_kind(manifests, "IngressClass") and not of_kind(manifests, "IngressClassParams")
    problems_, unchecked = helm_render.check(manifests, versions.DEFAULT_EKS_VERSION)
    assert problems_ == [] and unchecked == set(), (problems_, unchecked)


# -------------------------------------------------------------------------------------------- the endpoint


def test_internal_plain_by_default():
    settings = parse().endpoint
    assert (settings.public, settings.certificate_arn) == (False, None)
    assert nlb_service_annotations(settings) == {
        A + "scheme": "internal",
        A + "nlb-target-type": "ip",
        A + "target-group-attributes": "preserve_client_ip.enabled=false",
        A + "attributes": "load_balancing.cross_zone.enabled=true",
        A + "healthcheck-protocol": "tcp",
        A + "healthcheck-port": "traffic-port",
        A + "healthcheck-interval": "10",
        A + "healthcheck-healthy-threshold": "2",
        A + "healthcheck-unhealthy-threshold": "2",
    }
    assert nlb_listeners(settings) == (Listener(80, "TCP", "http"),)
    assert endpoint_warnings(settings) == []
    assert LOAD_BALANCER_CLASS == waiters.LOAD_BALANCER_CLASS == "service.k8s.aws/nlb"
    assert SERVICE_FINALIZER == waiters.LOAD_BALANCER_FINALIZER


def test_public_with_tls():
    settings = parse(public_endpoint="true", certificate_arn=CERT).endpoint
    annotations = nlb_service_annotations(settings, {"project": "nim-on-eks", "stack": "dev"})
    assert annotations[A + "scheme"] == "internet-facing"
    assert annotations[A + "ssl-cert"] == CERT
    assert annotations[A + "ssl-ports"] == "443"
    assert annotations[A + "ssl-negotiation-policy"] == TLS_POLICY == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert annotations[A + "additional-resource-tags"] == "project=nim-on-eks,stack=dev"
    assert nlb_listeners(settings) == (Listener(443, "TLS", "https"),)
    assert endpoint_warnings(settings) == []
    # TLS on an internal endpoint too
    assert nlb_listeners(parse(certificate_arn=CERT).endpoint)[0].port == 443


def test_tags_that_cannot_be_a_string_map_are_refused():
    with pytest.raises(ValueError, match="cannot hold ',' or '='"):
        nlb_service_annotations(parse().endpoint, {"team": "a,b"})


def test_public_without_tls_is_warned_about_not_refused():
    """The issue asks the plan to warn: a public endpoint without TLS is allowed (an evaluation behind an IP
    allow-list, say), but said plainly."""
    settings = parse(public_endpoint="true").endpoint
    [warning] = endpoint_warnings(settings)
    assert warning.startswith("public_endpoint is true without certificate_arn") and "certificate_arn" in warning
    plan = plan_for("public_endpoint=true")
    assert plan.error is None and warning in plan.warnings
    assert not any("public_endpoint" in w for w in plan_for().warnings)


def test_the_nlb_reaches_the_gateway_from_vpc_addresses():
    assert nlb_source_cidrs("10.0.0.0/16") == ["10.0.0.0/16"]


@pytest.mark.parametrize("value, expected", [
    ("arn:aws:acm:us-west-2:1234:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789", "is not valid; allowed: an ACM"),
    ("arn:aws:iam::123456789012:server-certificate/x", "is not valid; allowed: an ACM"),
    ("arn:aws:acm:us-west-2:123456789012:certificate/not-a-uuid", "is not valid; allowed: an ACM"),
    ("arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
     "is a certificate in us-east-1, but the stack's NLB is in us-west-2"),
    ("arn:aws-us-gov:acm:us-west-2:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
     "names partition aws-us-gov, but us-west-2 is in aws"),
])
def test_a_bad_certificate_is_refused_naming_the_key(value, expected):
    [problem] = problems(certificate_arn=value)
    assert problem.startswith(f"certificate_arn: {value!r} ") and expected in problem, problem
    assert "allowed:" in problem


def test_a_govcloud_certificate_in_a_govcloud_stack():
    gov = "arn:aws-us-gov:acm:us-gov-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    assert parse(**{"aws:region": "us-gov-west-1", "certificate_arn": gov}).endpoint.certificate_arn == gov


def test_public_endpoint_must_be_a_boolean():
    assert problems(public_endpoint="yes") == ["public_endpoint: 'yes' is not valid; allowed: true or false"]


def test_subnets_carry_what_the_controllers_discovery_needs(dev_plan):
    """docs/deploy/subnet_discovery.md @ v3.5.0: role tags pick public (elb) or private (internal-elb) subnets; a
    cluster tag, when present, must name this cluster."""
    subnets = dev_plan.of_type("aws:ec2/subnet:Subnet")
    public = [s for s in subnets if s.inputs["tags"].get("kubernetes.io/role/elb") == "1"]
    private = [s for s in subnets if s.inputs["tags"].get("kubernetes.io/role/internal-elb") == "1"]
    assert len(public) == len(private) == 3
    assert {s.inputs["availabilityZone"] for s in public} == {s.inputs["availabilityZone"] for s in private}
    for s in public + private:
        assert s.inputs["tags"]["kubernetes.io/cluster/nim-on-eks-dev"] in ("owned", "shared")


def test_user_tags_stay_off_the_controllers_comma_separated_flag():
    """`defaultTags` becomes `--default-tags=k=v,k=v`: a user tag holding ',' or '=' would break it, so the controller
    gets the program's own tags (AWS-provider resources still get every tag)."""
    plan = plan_for('tags={"team": "ml,infra", "cost-center": "a=b"}')
    assert plan.error is None, plan.error
    assert values_of(plan)["defaultTags"] == {"project": "nim-on-eks", "stack": "dev",
                                              "nim-on-eks/cluster": "nim-on-eks-dev"}
