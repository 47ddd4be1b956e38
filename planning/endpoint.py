"""How the gateway is exposed: one Network Load Balancer, made by the AWS Load Balancer Controller v3.5.0 for the
gateway's Service of type LoadBalancer. Pure facts and helpers; components/loadbalancer.py runs the controller,
the gateway puts `nlb_service_annotations` and `LOAD_BALANCER_CLASS` on its Service and listens on
`nlb_listeners`.

Every annotation name and value is the controller's, as documented at its tag v3.5.0 (kubernetes-sigs/
aws-load-balancer-controller @ 11eb202c, docs/guide/service/annotations.md, "annotations" below; docs/guide/service/
nlb.md, "nlb" below):
- `spec.loadBalancerClass: service.k8s.aws/nlb` hands the Service to the controller (nlb, "With LoadBalancerClass";
  its default class, pkg/config/service_config.go), with no need of its Service mutating webhook, which we switch
  off (components/loadbalancer.py says why).
- scheme `internal` (the controller's default, stated anyway) or `internet-facing` (annotations, lb-scheme).
- target type `ip`: the NLB sends to the Envoy pods' VPC addresses (VPC CNI), no NodePort hop; with a load balancer
  class the default would be `instance` (annotations, nlb-target-type).
- client IP preservation off, stated: the default for ip targets (annotations, lb-source-ranges: "preserve client
  IP is disabled by default for IP targets"), and what the gateway's NetworkPolicy rests on: the pods see the NLB's
  own private addresses, in the VPC (`nlb_source_cidrs`), for traffic and health checks alike (nlb, "Worker node
  security groups rules").
- cross-zone load balancing on (annotations, load-balancer-attributes: `load_balancing.cross_zone.enabled=true`),
  so a client's zone never decides which Envoy replicas it can reach.
- health check: TCP to the traffic port (annotations, healthcheck-protocol / healthcheck-port), i.e. Envoy's
  listener accepts connections; 2 checks each way, every 10 s (healthcheck-*-threshold, healthcheck-interval; the
  ELB API's CreateTargetGroup allows thresholds of 2-10 and intervals of 5-300 s), so a replica that stops is out
  within about 20 s.
- TLS with `certificate_arn`: the ACM certificate (ssl-cert) on the TLS listener, port 443 only (ssl-ports), with
  the policy `ELBSecurityPolicy-TLS13-1-2-2021-06` (ssl-negotiation-policy; TLS 1.2 and 1.3 only): the controller's
  default is `ELBSecurityPolicy-2016-08`, which still accepts TLS 1.0. The NLB terminates TLS and forwards plain
  TCP to Envoy inside the VPC (backend-protocol: `tcp`, the default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the settings are declared with the other config keys, which import this module's parser
    from planning.config import EndpointSettings

LOAD_BALANCER_CLASS = "service.k8s.aws/nlb"
# The controller's finalizer on every Service whose NLB it made, removed once the NLB is deleted
# (pkg/shared_constants/finalizers.go @ v3.5.0).
SERVICE_FINALIZER = "service.k8s.aws/resources"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
HTTP_PORT = 80
TCP_IDLE_TIMEOUT_RANGE = (60, 6000)  # seconds a TCP listener's idle timeout may be (AWS ELB docs)
TLS_IDLE_TIMEOUT_SECONDS = 350  # fixed for TLS listeners (same page)
HTTPS_PORT = 443

ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-"

# arn:<partition>:acm:<region>:<account>:certificate/<uuid> (ACM's ARN format, Service Authorization Reference
# "Resource types defined by AWS Certificate Manager"). The partitions are the ones the program supports
# (planning/config.py region_problem).
CERTIFICATE_ARN_RE = re.compile(
    r"arn:(?P<partition>aws|aws-us-gov):acm:(?P<region>[a-z]{2}(-gov)?(-[a-z]+)+-\d):(?P<account>\d{12}):"
    r"certificate/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CERTIFICATE_ARN_EXAMPLE = "arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def certificate_region(arn: str) -> str:
    """The region of a certificate ARN that matched CERTIFICATE_ARN_RE."""
    match = CERTIFICATE_ARN_RE.fullmatch(arn)
    if match is None:
        raise ValueError(f"not an ACM certificate ARN: {arn!r}")
    return match["region"]


def partition_of(region: str) -> str:
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def certificate_problem(arn: str, region: str) -> str | None:
    """What is wrong with an ACM certificate (already well formed) for an NLB in `region`: an NLB takes only
    certificates of its own region (ELB user guide, "Server certificates": the certificate must be in the same
    Region as the load balancer), in its own partition."""
    match = CERTIFICATE_ARN_RE.fullmatch(arn)
    if match is None:
        return None
    if match["region"] != region:
        return (f"certificate_arn: {arn!r} is a certificate in {match['region']}, but the stack's NLB is in "
                f"{region}, and an NLB can use only ACM certificates of its own region; allowed: an ACM certificate "
                f"in {region} (request or import it there)")
    if match["partition"] != partition_of(region):
        return (f"certificate_arn: {arn!r} names partition {match['partition']}, but {region} is in "
                f"{partition_of(region)}; allowed: arn:{partition_of(region)}:acm:{region}:...")
    return None


@dataclass(frozen=True)
class Listener:
    """A port the NLB listens on, and what it does there: `TLS` terminates with the certificate, `TCP` passes
    plain bytes through. The gateway's Service port (and its Gateway listener, plain HTTP either way) is `port`."""

    port: int
    protocol: str
    name: str


def nlb_listeners(settings: EndpointSettings) -> tuple[Listener, ...]:
    """443 with TLS when a certificate is given (and no plain port: every client uses HTTPS), else 80 plain."""
    if settings.certificate_arn:
        return (Listener(HTTPS_PORT, "TLS", "https"),)
    return (Listener(HTTP_PORT, "TCP", "http"),)


def nlb_service_annotations(settings: EndpointSettings, tags: dict[str, str] | None = None,
                            idle_timeout_seconds: int | None = None) -> dict[str, str]:
    """The annotations of the gateway's Service (with `spec.loadBalancerClass: LOAD_BALANCER_CLASS`): see the
    module docstring for each. `tags` go on the NLB, its target groups and listeners too (stringMap: no `,` or `=`
    in keys or values). `idle_timeout_seconds`: how long a connection may carry no byte (a request waiting for a
    model at zero carries none until the model answers); the NLB's TCP default is 350 s, a TCP listener takes
    60-6000 (AWS ELB "Update the TCP idle timeout"; the controller's listener-attributes annotation, v3.5.0
    docs/guide/service/annotations.md). A TLS listener's stays 350 s: AWS does not let it change."""
    annotations = {
        ANNOTATION + "scheme": "internet-facing" if settings.public else "internal",
        ANNOTATION + "nlb-target-type": "ip",
        ANNOTATION + "target-group-attributes": "preserve_client_ip.enabled=false",
        ANNOTATION + "attributes": "load_balancing.cross_zone.enabled=true",
        ANNOTATION + "healthcheck-protocol": "tcp",
        ANNOTATION + "healthcheck-port": "traffic-port",
        ANNOTATION + "healthcheck-interval": "10",
        ANNOTATION + "healthcheck-healthy-threshold": "2",
        ANNOTATION + "healthcheck-unhealthy-threshold": "2",
    }
    if idle_timeout_seconds and not settings.certificate_arn:
        seconds = max(TCP_IDLE_TIMEOUT_RANGE[0], min(TCP_IDLE_TIMEOUT_RANGE[1], idle_timeout_seconds))
        annotations[ANNOTATION + f"listener-attributes.TCP-{HTTP_PORT}"] = f"tcp.idle_timeout.seconds={seconds}"
    if settings.certificate_arn:
        annotations |= {
            ANNOTATION + "ssl-cert": settings.certificate_arn,
            ANNOTATION + "ssl-ports": str(HTTPS_PORT),
            ANNOTATION + "ssl-negotiation-policy": TLS_POLICY,
        }
    if tags:
        bad = [f"{k}={v}" for k, v in tags.items() if any(c in f"{k}{v}" for c in ",=")]
        if bad:
            raise ValueError(f"tags for the NLB cannot hold ',' or '=' (a stringMap annotation): {', '.join(bad)}")
        annotations[ANNOTATION + "additional-resource-tags"] = ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
    return annotations


def nlb_source_cidrs(vpc_cidr: str) -> list[str]:
    """Where the NLB's packets come from, as the Envoy pods see them: its own private addresses in the subnets it
    lives in (public ones when internet-facing, private ones when internal), all inside the VPC, because client IP
    preservation is off (see the module docstring). The gateway's ingress NetworkPolicy allows these."""
    return [vpc_cidr]


def endpoint_warnings(settings: EndpointSettings, cold_start_wait_seconds: int = 0) -> list[str]:
    """What `pulumi up` and the plan warn about the endpoint: a public one without TLS sends API keys and prompts
    over the internet in clear text; with TLS, a request to a model at zero may wait (`cold_start_wait_seconds`, 0
    when no model scales to zero) longer than the NLB keeps an idle TLS connection (350 s, fixed), so the client
    must keep its connection alive."""
    warnings = []
    if settings.public and not settings.certificate_arn:
        warnings.append(
            "public_endpoint is true without certificate_arn: the gateway is reachable from the internet over "
            "plain HTTP (port 80), so API keys and prompts cross the internet unencrypted; set certificate_arn "
            "to an ACM certificate of the stack's region for TLS on port 443")
    if settings.certificate_arn and cold_start_wait_seconds > TLS_IDLE_TIMEOUT_SECONDS:
        warnings.append(
            f"certificate_arn: the NLB closes a TLS connection idle for {TLS_IDLE_TIMEOUT_SECONDS} s (AWS does not "
            f"let a TLS listener's idle timeout change), and a request may wait up to {cold_start_wait_seconds} s for "
            "a model at zero to start: clients must send TCP keepalives (curl does every 60 s by default; for "
            "Python clients see README, The endpoint), or keep such models at min_replicas 1")
    return warnings
