"""NetworkPolicies for the namespaces the program owns, rendered from the declared flows (planning/flows.py):
a default deny for ingress in each, the allows the product needs, and the `nim` namespace's egress (DNS, 443, the
models). Enforced by the Amazon VPC CNI's network policy agent (components/cluster.py turns it on).

Each policy waits for its namespace and is deleted with it on destroy: nothing outlives the namespaces."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from planning.flows import DEFAULT_DENY, RENAMED, Namespaces, policies


@dataclass
class NetworkPoliciesArgs:
    namespaces: Namespaces
    # the Namespace objects (or the components making them) the policies go into: created first
    namespace_resources: list[pulumi.Resource] = field(default_factory=list)


class NetworkPolicies(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("nim-on-eks:index:NetworkPolicies", name, None, opts)
        in_namespaces = pulumi.ResourceOptions(parent=self, depends_on=args.namespace_resources)
        everything = policies(args.namespaces)

        def make(p: dict, opts: pulumi.ResourceOptions) -> k8s.networking.v1.NetworkPolicy:
            ns, policy = p["metadata"]["namespace"], p["metadata"]["name"]
            # a renamed policy keeps its old resource name as an alias (planning/flows.py RENAMED)
            renamed = pulumi.ResourceOptions(aliases=[pulumi.Alias(name=f"{name}-{ns}-{RENAMED[policy]}")]) \
                if policy in RENAMED else None
            return k8s.networking.v1.NetworkPolicy(f"{name}-{ns}-{policy}", metadata=p["metadata"], spec=p["spec"],
                                                   opts=pulumi.ResourceOptions.merge(opts, renamed))

        # The allows first, then each namespace's default deny: applied together on a cluster already running, the
        # deny alone would drop the product's flows (and the API server's calls to fail-closed webhooks) for the
        # seconds between them; on destroy the deny goes first for the same reason.
        allows = [(p["metadata"]["namespace"], make(p, in_namespaces)) for p in everything
                  if p["metadata"]["name"] != DEFAULT_DENY]
        denies = [make(p, pulumi.ResourceOptions.merge(in_namespaces, pulumi.ResourceOptions(
                      depends_on=[r for ns, r in allows if ns == p["metadata"]["namespace"]])))
                  for p in everything if p["metadata"]["name"] == DEFAULT_DENY]
        self.policies = [r for _, r in allows] + denies
        self.register_outputs({"count": len(self.policies)})
