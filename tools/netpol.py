"""Does a set of NetworkPolicy objects allow a connection? Pure Python, written against the NetworkPolicy semantics
of kubernetes.io/docs/concepts/services-networking/network-policies (API networking.k8s.io/v1):

- a policy applies to the pods of its own namespace its `podSelector` selects (`{}`: all of them);
- a pod is isolated for ingress (egress) when any policy applying to it has Ingress (Egress) in `policyTypes`
  (when `policyTypes` is absent: Ingress always, Egress when the policy has an `egress` section);
- a connection is allowed when the source's egress and the destination's ingress both allow it; a non-isolated
  direction allows everything, an isolated one what the union of the applying policies' rules allows;
- a rule matches when one of its peers matches (`from`/`to` absent or empty: any peer) and one of its ports does
  (`ports` absent or empty: any port);
- a peer is `podSelector` alone (pods of the policy's namespace), `namespaceSelector` alone (every pod of the
  selected namespaces), both in one peer (pods matching the podSelector in the selected namespaces: AND), or
  `ipBlock` (cidr minus `except`); pod peers never match an IP endpoint, and ipBlock is matched against IP
  endpoints only (the docs leave ipBlock against pod IPs implementation-defined; the flows here never need it);
- selectors: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist); `{}` selects everything;
- ports: `protocol` (default TCP), numeric `port` with optional `endPort` (a range); a named port matches when the
  destination endpoint declares that name for the same number and protocol (the flow carries its port names).

Not modelled: the node's own traffic to its pods, which every implementation (and the VPC CNI's agent) allows
(planning/flows.py), hostNetwork pods, and Services (flows name the pod's port, after the Service's translation).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

NS_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace + labels, and its named ports) or an address outside the pod network."""

    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    ip: str | None = None
    named_ports: dict[str, int] = field(default_factory=dict)  # the destination's containerPort names

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector against labels; an empty selector selects everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown selector operator {op!r}")
    return True


def namespace_labels(namespace: str, extra: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """A namespace's labels: the API server always sets kubernetes.io/metadata.name to its name."""
    return {**((extra or {}).get(namespace) or {}), NS_LABEL: namespace}


def peer_matches(peer: dict[str, Any], policy_ns: str, other: Endpoint,
                 ns_labels: dict[str, dict[str, str]] | None = None) -> bool:
    if "ipBlock" in peer:
        if other.is_pod or other.ip is None:
            return False
        addr = ipaddress.ip_network(other.ip, strict=False)
        block = peer["ipBlock"]
        if not addr.subnet_of(ipaddress.ip_network(block["cidr"])):
            return False
        return not any(addr.overlaps(ipaddress.ip_network(e)) for e in block.get("except") or [])
    if not other.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], namespace_labels(other.namespace, ns_labels)):
            return False
    elif other.namespace != policy_ns:  # podSelector alone: the policy's own namespace
        return False
    return selects(peer.get("podSelector"), other.labels) if "podSelector" in peer else True


def port_matches(port: dict[str, Any], number: int, protocol: str, destination: Endpoint) -> bool:
    if port.get("protocol", "TCP") != protocol:
        return False
    if "port" not in port:
        return True  # any port of that protocol
    want = port["port"]
    if isinstance(want, str):
        return destination.named_ports.get(want) == number
    return want <= number <= port.get("endPort", want)


def rule_allows(rule: dict[str, Any], peers_key: str, policy_ns: str, other: Endpoint, port: int, protocol: str,
                destination: Endpoint, ns_labels: dict[str, dict[str, str]] | None) -> bool:
    peers = rule.get(peers_key) or []
    ports = rule.get("ports") or []
    return (not peers or any(peer_matches(p, policy_ns, other, ns_labels) for p in peers)) and \
        (not ports or any(port_matches(p, port, protocol, destination) for p in ports))


def policy_types(spec: dict[str, Any]) -> list[str]:
    if "policyTypes" in spec:
        # the API's schema has no enum here (the conformance gate passes "Ingres"): refuse what the API server would
        if unknown := set(spec["policyTypes"]) - {"Ingress", "Egress"}:
            raise ValueError(f"policyTypes {sorted(unknown)}: only Ingress and Egress exist")
        return spec["policyTypes"]
    return ["Ingress", *(["Egress"] if "egress" in spec else [])]


def _direction_allows(policies: list[dict[str, Any]], pod: Endpoint, direction: str, other: Endpoint, port: int,
                      protocol: str, destination: Endpoint, ns_labels) -> tuple[bool, list[str]]:
    """(allowed, names of the policies that admitted it) for one side; not isolated: allowed, no names."""
    applying = [p for p in policies if p["metadata"].get("namespace") == pod.namespace
                and selects(p["spec"].get("podSelector"), pod.labels) and direction in policy_types(p["spec"])]
    if not applying:
        return True, []
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    admitted = [p["metadata"]["name"] for p in applying
                if any(rule_allows(r, peers_key, pod.namespace, other, port, protocol, destination, ns_labels)
                       for r in p["spec"].get(key) or [])]
    return bool(admitted), admitted


@dataclass
class Verdict:
    allowed: bool
    egress: bool
    ingress: bool
    by: list[str]  # the policies that admitted it

    def __bool__(self) -> bool:
        return self.allowed


def allowed(policies: list[dict[str, Any]], source: Endpoint, destination: Endpoint, port: int,
            protocol: str = "TCP", ns_labels: dict[str, dict[str, str]] | None = None) -> Verdict:
    """Whether `source` may open a connection to `destination`:`port`/`protocol` under `policies`."""
    if protocol not in ("TCP", "UDP", "SCTP"):
        raise ValueError(f"protocol {protocol!r}")
    out, by_out = (_direction_allows(policies, source, "Egress", destination, port, protocol, destination, ns_labels)
                   if source.is_pod else (True, []))
    inn, by_in = (_direction_allows(policies, destination, "Ingress", source, port, protocol, destination, ns_labels)
                  if destination.is_pod else (True, []))
    return Verdict(out and inn, out, inn, by_out + by_in)
