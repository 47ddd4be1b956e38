"""NetworkPolicies for the namespaces the program owns, rendered from the declared flows (planning/flows.py):
a default deny for ingress in each, the allows the product needs, and the `nim` namespace's egress (DNS, 443, the
models). Enforced by the Amazon VPC CNI's network policy agent (components/cluster.py turns it on).

Each policy waits for its namespace and is deleted with it on destroy: nothing outlives the namespaces."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from planning.flows import Namespaces, policies


@dataclass
class NetworkPoliciesArgs:
    namespaces: Namespaces
    # the Namespace objects (or the components making them) the policies go into: created first
    namespace_resources: list[pulumi.Resource] = field(default_factory=list)


class NetworkPolicies(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:NetworkPolicies", name, None, opts)
        in_namespaces = pulumi.ResourceOptions(parent=self, depends_on=args.namespace_resources)
        self.policies = [
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{p['metadata']['namespace']}-{p['metadata']['name']}",
                metadata=p["metadata"], spec=p["spec"], opts=in_namespaces,
            )
            for p in policies(args.namespaces)
        ]
        self.register_outputs({"count": len(self.policies)})
