"""Run the real `__main__.py` under Pulumi's mock runtime and record what the engine would receive.

Used by `tools/plan.py` (the offline plan) and by the tests: one harness, one copy of the composition.
Each run happens in a fresh thread, so Pulumi's per-context runtime state never leaks between runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import runpy
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks as pmocks
from pulumi.runtime.proto import resource_pb2

from tools import opaque

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "nim-on-eks"
ACCOUNT = "123456789012"
PLACEHOLDER_KEY = "nvapi-offline-plan-placeholder"

# Pulumi's wire format markers (sdk/python/lib/pulumi/runtime/rpc.py).
_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SECRET = "[secret]"


@dataclass
class Resource:
    type: str
    name: str
    urn: str
    id: str
    parent: str
    custom: bool
    provider: str
    dependencies: list[str]
    inputs: dict[str, Any]  # every secret shown as "[secret]"
    # The same inputs with secrets unwrapped, for schema checks and tests of secret contents; never written out.
    revealed: dict[str, Any] = field(default_factory=dict, repr=False)
    # Created inside an opaque component, or by AWS on its behalf (tools/opaque.py): not registered by the program,
    # but real on `pulumi up`; `inputs` then holds its state. `created_by` says who makes it.
    implied: bool = False
    created_by: str = ""
    # What the mocks answered (ids, ARNs, names a provider would compute), for checks that follow values between
    # resources; secrets masked. Not part of the plan JSON: under mocks most outputs echo the inputs.
    outputs: dict[str, Any] = field(default_factory=dict, repr=False)
    # The URNs this resource had before (ResourceOptions.aliases, with those its parents' aliases imply): a stack
    # already up under one of them is updated in place, not replaced.
    aliases: list[str] = field(default_factory=list)
    # A remote component's providers by package (pulumi-eks gets the AWS provider this way); custom resources
    # name theirs in `provider`.
    providers: dict[str, str] = field(default_factory=dict)
    # ResourceOptions.custom_timeouts as the engine gets them ({"create": "34m", ...}); not part of the plan JSON.
    timeouts: dict[str, str] = field(default_factory=dict, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "urn": self.urn,
            "id": self.id,
            "parent": self.parent,
            "dependencies": self.dependencies,
            "inputs": self.inputs,
            **({"aliases": self.aliases} if self.aliases else {}),
            **({"providers": self.providers} if self.providers else {}),
            **({"implied": True, "created_by": self.created_by} if self.implied else {}),
        }


@dataclass
class Plan:
    stack: str
    config: dict[str, Any]
    resources: list[Resource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    # -- queries used by the plan printer and the tests
    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Resource:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise LookupError(f"expected one {type_} named {name!r}, found {len(found)} among {names}")
        return found[0]

    def children(self, resource: Resource, recursive: bool = True) -> list[Resource]:
        """The resources whose parent is `resource` (recursive: and their children, down the `parent` links), in
        registration order. What an opaque component creates inside (tools/opaque.py) counts as its children."""
        return self._below([resource], recursive)

    def within(self, component_type: str, name: str | None = None, type_: str | None = None) -> list[Resource]:
        """The resources inside the components of `component_type` (only the one named `name`, when given), at any
        depth, of `type_` when given, in registration order: "the IAM roles of the Karpenter component" is
        `within("nim-on-eks:index:Karpenter", type_="aws:iam/role:Role")`. No such component is a LookupError, so
        a mistyped component never reads as "it has nothing inside"; ask `of_type` whether a component exists."""
        components = [c for c in self.of_type(component_type) if name is None or c.name == name]
        if not components:
            present = sorted({c.name for c in self.of_type(component_type)}) or sorted(
                {r.type for r in self.resources if not r.custom})
            raise LookupError(f"no {component_type} named {name!r} in the plan; there are {present}"
                              if name is not None else f"no {component_type} in the plan; components: {present}")
        return [r for r in self._below(components, recursive=True) if type_ is None or r.type == type_]

    def _below(self, parents: list[Resource], recursive: bool) -> list[Resource]:
        below: dict[str, list[str]] = {}
        for r in self.resources:
            below.setdefault(r.parent, []).append(r.urn)
        found: set[str] = set()
        stack = [urn for p in parents for urn in below.get(p.urn, [])]
        while stack:
            urn = stack.pop()
            found.add(urn)
            if recursive:
                stack.extend(below.get(urn, []))
        return [r for r in self.resources if r.urn in found]

    def depends_on(self, resource: Resource, other: Resource) -> bool:
        """True when `resource` is created after (and deleted before) `other`, directly or transitively.

        Follows what the engine orders by: explicit and input dependencies, the resource's provider (created
        before and deleted after every resource that uses it), and a component's children.
        """
        index = {r.urn: r for r in self.resources}
        seen: set[str] = set()

        def edges(r: Resource) -> list[str]:
            provider = [r.provider.rsplit("::", 1)[0]] if r.provider else []
            return [*r.dependencies, *provider]

        stack = edges(resource)
        while stack:
            urn = stack.pop()
            if urn == other.urn:
                return True
            if urn in seen or urn not in index:
                continue
            seen.add(urn)
            dep = index[urn]
            stack.extend(edges(dep))
            # depending on a component means depending on all of its children
            stack.extend(r.urn for r in self.resources if r.parent == urn)
        return False

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "resources": [r.as_json() for r in self.resources],
            "outputs": self.outputs,
            "notes": self.notes,
            "warnings": self.warnings,
        }


def _plain(value: Any, reveal: bool = False) -> Any:
    """Wire-format value -> JSON, with every secret replaced by "[secret]" (or unwrapped, with reveal)."""
    if isinstance(value, dict):
        if value.get(_SIG) == _SECRET_SIG:
            return _plain(value.get("value"), reveal) if reveal else SECRET
        if value.get(_SIG) == _RESOURCE_SIG:
            return value.get("urn")
        return {k: _plain(v, reveal) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, reveal) for v in value]
    if value == _UNKNOWN:
        return "[unknown]"
    return value


def _ints(value: Any) -> Any:
    """protobuf Struct numbers are floats; show whole numbers as ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc-",
    "aws:ec2/subnet:Subnet": "subnet-",
    "aws:ec2/securityGroup:SecurityGroup": "sg-",
    "aws:ec2/internetGateway:InternetGateway": "igw-",
    "aws:ec2/natGateway:NatGateway": "nat-",
    "aws:ec2/eip:Eip": "eipalloc-",
    "aws:ec2/routeTable:RouteTable": "rtb-",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt-",
    "aws:efs/fileSystem:FileSystem": "fs-",
    "aws:kms/key:Key": "",
}


def partition_for(region: str) -> str:
    """The AWS partition of a region, as `aws.get_partition()` answers there."""
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


class PlanMocks(pulumi.runtime.Mocks):
    """Realistic outputs for the resources and data sources the program reads, in the region's partition."""

    def __init__(self, region: str):
        self.region = region
        self.partition = partition_for(region)
        # (type, name) a resource had when created, when it is registered under an alias (RecordingMonitor)
        self.identity = threading.local()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = dict(args.inputs)
        typ = args.typ
        created_type, name = getattr(self.identity, "value", None) or (typ, args.name)
        digest = hashlib.sha1(f"{created_type}/{name}".encode()).hexdigest()
        rid = _ID_PREFIX.get(typ, f"{name}-") + digest[:17]
        out = dict(inputs)
        if typ.startswith("aws:"):
            service = typ.split(":")[1].split("/")[0]
            out.setdefault("arn", f"arn:{self.partition}:{service}:{self.region}:{ACCOUNT}:{name}")
            out.setdefault("tagsAll", inputs.get("tags", {}))
        if typ == "aws:iam/role:Role":
            out["name"] = inputs.get("name") or f"{name}-{digest[:7]}"
            out["arn"] = f"arn:{self.partition}:iam::{ACCOUNT}:role/{out['name']}"
        elif typ == "aws:iam/policy:Policy":
            out["arn"] = f"arn:{self.partition}:iam::{ACCOUNT}:policy/{inputs.get('name') or name}"
        elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
            out["latestVersion"] = 1
        elif typ == "aws:sqs/queue:Queue":
            qname = inputs.get("name") or name
            out["name"] = qname
            out["arn"] = f"arn:{self.partition}:sqs:{self.region}:{ACCOUNT}:{qname}"
            out["url"] = f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT}/{qname}"
        elif typ == "aws:kms/key:Key":
            rid = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
            out["arn"] = f"arn:{self.partition}:kms:{self.region}:{ACCOUNT}:key/{rid}"
        elif typ == "aws:eks/podIdentityAssociation:PodIdentityAssociation":
            out["associationId"] = f"a-{digest[:17]}"
            out["associationArn"] = (f"arn:{self.partition}:eks:{self.region}:{ACCOUNT}:podidentityassociation/"
                                     f"{inputs.get('clusterName')}/a-{digest[:17]}")
        elif typ == "aws:secretsmanager/secret:Secret":
            out["name"] = (inputs.get("namePrefix") or name) + digest[:6]
        elif typ == opaque.EKS_CLUSTER:
            # what it creates inside (and so its security-group outputs) comes from tools/opaque.py
            implied = self.implied_of(name, inputs)
            cluster = next(i for i in implied if i.type == "aws:eks/cluster:Cluster")
            issuer = cluster.state["identities"][0]["oidcs"][0]["issuer"]
            oidc = next((i for i in implied if i.type.endswith("openIdConnectProvider:OpenIdConnectProvider")), None)
            out.update(
                kubeconfigJson=json.dumps(_kubeconfig(cluster.state["name"], self.region)),
                oidcIssuer=issuer.removeprefix("https://"),
                oidcProviderUrl=issuer.removeprefix("https://"),
                oidcProviderArn=oidc.state["arn"] if oidc else "",
                **opaque.component_outputs(implied),
            )
        elif typ == "random:index/randomPassword:RandomPassword":
            length = int(inputs.get("length", 16))
            out["result"] = ("mock" + digest * 4)[:length]
        return rid, out

    def call(self, args: pulumi.runtime.MockCallArgs):
        token = args.token
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            letters = "abcd"
            return {
                "id": self.region,
                "names": [f"{self.region}{c}" for c in letters],
                "zoneIds": [f"{self.region.replace('-', '')[:4]}{i + 1}-az{i + 1}" for i in range(len(letters))],
                "groupNames": [self.region] * len(letters),
            }
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"id": ACCOUNT, "accountId": ACCOUNT, "arn": f"arn:{self.partition}:iam::{ACCOUNT}:user/plan",
                    "userId": "AIDPLAN"}
        if token == "aws:index/getPartition:getPartition":
            suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
            return {"id": self.partition, "partition": self.partition, "dnsSuffix": suffix,
                    "reverseDnsSuffix": ".".join(reversed(suffix.split(".")))}
        if token == "aws:index/getRegion:getRegion":
            return {"id": self.region, "name": self.region, "region": self.region}
        return {}

    def implied_of(self, name: str, inputs: dict[str, Any]) -> list[opaque.Implied]:
        return opaque.eks_cluster(name, _plain(inputs), partition=self.partition, region=self.region,
                                  account=ACCOUNT)


def _kubeconfig(name: str, region: str) -> dict[str, Any]:
    server = f"https://{name.upper()}.gr7.{region}.eks.amazonaws.com"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": "bW9jaw=="}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "users": [{"name": name, "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                                   "command": "aws", "args": ["eks", "get-token", "--cluster-name", name]}}}],
    }


class RecordingMonitor(pmocks.MockMonitor):
    """Sees every registration as the engine would: parent, dependencies, inputs with secret markers."""

    def __init__(self, mocks: PlanMocks):
        super().__init__(mocks)
        self.records: list[Resource] = []
        self.alias_urns: dict[str, list[str]] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # As the engine builds URNs (so that they match those the SDK computes for aliases): the parent's whole
        # type chain, without the root stack's type. The SDK's mock keeps only the parent's last type, and the
        # stack's.
        chain = parent.split("::")[2] if parent else ""
        if chain and chain != "pulumi:pulumi:Stack":
            type_ = f"{chain}${type_}"
        return f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{type_}::{name}"

    def GetDeploymentInfo(self, request):
        # Without alias specs the SDK resolves a resource's own aliases to full URNs (pulumi/runtime/resource.py
        # `collapse_alias_to_urn`) and sends them in `aliasURNs`; `_aliases` adds those its parents' aliases imply.
        info = super().GetDeploymentInfo(request)
        features = [f for f in info.supportedFeatures if f != resource_pb2.RESOURCE_MONITOR_FEATURE_ALIAS_SPECS]
        return resource_pb2.DeploymentInfo(supportedFeatures=features)

    def _aliases(self, request) -> list[str]:
        """The URNs the resource may have had: its own aliases, and for each alias of its parent the same child
        under that alias, its name re-prefixed when it starts with the parent's name (the engine's
        inheritedChildAlias, sdk/go/pulumi/alias.go; the SDK's `inherited_child_alias`)."""
        own = list(request.aliasURNs)
        parent_aliases = self.alias_urns.get(request.parent, [])
        parent_name = request.parent.rsplit("::", 1)[-1]
        inherited = []
        for parent_alias in parent_aliases:
            alias_parent_name = parent_alias.rsplit("::", 1)[1]
            for urn in [self.make_urn(request.parent, request.type, request.name), *own]:
                child_type = urn.split("::")[2].split("$")[-1]
                child_name = urn.rsplit("::", 1)[1]
                if child_name.startswith(parent_name):
                    child_name = alias_parent_name + child_name[len(parent_name):]
                inherited.append(f"{parent_alias.rsplit('::', 1)[0]}${child_type}::{child_name}")
        return sorted(set(own + inherited))

    def RegisterResource(self, request):
        aliases = self._aliases(request) if request.type != "pulumi:pulumi:Stack" else []
        # A resource found under an alias keeps what it was created with: its mock id and generated names come
        # from its first alias' name and type, as the real ones come from the stack's state.
        self.mocks.identity.value = (aliases[0].split("::")[2].split("$")[-1], aliases[0].rsplit("::", 1)[1]) \
            if aliases else None
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.alias_urns[response.urn] = aliases
            deps = set(request.dependencies)
            for prop in request.propertyDependencies.values():
                deps.update(prop.urns)
            wire = json_format.MessageToDict(request.object)
            inputs = _ints(_plain(wire))
            revealed = _plain(wire, reveal=True)
            inputs.pop("__provider", None)  # a dynamic provider's serialized code: not an input anyone reads
            record = Resource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                id=response.id,
                parent=request.parent,
                custom=bool(request.custom),
                provider=request.provider,
                dependencies=sorted(deps),
                inputs=inputs,
                revealed=_ints(revealed),
                aliases=aliases,
                providers=dict(request.providers) if request.remote else {},
                timeouts={k: v for k, v in json_format.MessageToDict(request.customTimeouts).items() if v},
            )
            self.records.append(record)
            if request.type == opaque.EKS_CLUSTER:
                self._record_implied(request, response, sorted(deps), revealed)
            record.outputs = _ints(_plain(json_format.MessageToDict(response.object)))
        return response

    def _record_implied(self, request, response, deps: list[str], inputs: dict[str, Any]) -> None:
        """Record what the opaque component creates inside, make its resource outputs real references to it."""
        implied = self.mocks.implied_of(request.name, inputs)
        urns = {i.name: self.make_urn(response.urn, i.type, i.name) for i in implied}
        for i in implied:
            urn = urns[i.name]
            self.resources[urn] = self.ResourceRegistration(urn, i.id, i.state)  # for resource references
            self.records.append(Resource(
                type=i.type, name=i.name, urn=urn, id=i.id, parent=response.urn, custom=True,
                provider=request.providers.get("aws", "") if i.created_by == opaque.BY_COMPONENT else "",
                # a remote component's children wait for what the component waits for
                dependencies=sorted({*deps, *(urns[d] for d in i.depends_on)}),
                inputs=i.state, revealed=i.state, implied=True, created_by=i.created_by, outputs=i.state,
            ))
        for output, child in opaque.resource_outputs(implied).items():
            child_urn = urns[child]
            response.object[output] = {_SIG: _RESOURCE_SIG, "urn": child_urn, "id": self.resources[child_urn].id}


# ------------------------------------------------------------------------------------------ stack config


def _engine_value(value: Any) -> str:
    """Config as the Pulumi CLI hands it to the program: strings as-is, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def stack_config(stack: str, overrides: list[str] | None = None, root: Path = ROOT) -> tuple[dict, list[str], list[str]]:
    """(config, secret keys, notes) for `Pulumi.<stack>.yaml` plus `KEY=VALUE` overrides."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path.name}; stacks here: "
                                f"{', '.join(p.name for p in sorted(root.glob('Pulumi.*.yaml')))}")
    data = yaml.safe_load(path.read_text()) or {}
    config: dict[str, Any] = {}
    secrets: list[str] = []
    notes: list[str] = []

    def full(key: str) -> str:
        return key if ":" in key else f"{PROJECT}:{key}"

    for key, value in (data.get("config") or {}).items():
        key = full(key)
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = PLACEHOLDER_KEY if key.endswith(":ngc_api_key") else "offline-plan-placeholder"
            secrets.append(key)
            notes.append(f"{key} is encrypted in {path.name}; the offline plan uses a placeholder secret")
            continue
        config[key] = _engine_value(value)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        config[full(key.strip())] = value
        if key.strip().endswith("ngc_api_key"):
            secrets.append(full(key.strip()))  # as `pulumi config set --secret` would store it
    key = f"{PROJECT}:ngc_api_key"
    if key not in config:
        config[key] = PLACEHOLDER_KEY
        secrets.append(key)
        notes.append("ngc_api_key is not set; the offline plan uses a placeholder secret "
                     "(set yours with `pulumi config set --secret ngc_api_key nvapi-...`)")
    return config, secrets, notes


# ---------------------------------------------------------------------------------------------- running


class _LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def run(stack: str = "dev", overrides: list[str] | None = None, root: Path = ROOT) -> Plan:
    """Run `__main__.py` for a stack under mocks; a config error is returned in `Plan.error`."""
    config, secrets, notes = stack_config(stack, overrides, root)
    plan = Plan(stack=stack, config=config, notes=notes)
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(_run_in_thread(plan, secrets, root)), daemon=True)
    thread.start()
    thread.join()
    if "exception" in result:
        raise result["exception"]
    return plan


def _run_in_thread(plan: Plan, secrets: list[str], root: Path) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    region = plan.config.get("aws:region") or "us-west-2"
    monitor = RecordingMonitor(PlanMocks(region))
    logger = logging.getLogger(f"nim-on-eks.plan.{id(plan)}")
    logger.propagate = False
    capture = _LogCapture()
    logger.addHandler(capture)
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=plan.stack, preview=False,
                             logger=logger, monitor=monitor)
    pulumi.runtime.set_all_config(plan.config, secrets)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        loop.run_until_complete(
            pulumi.runtime.stack.run_pulumi_func(lambda: runpy.run_path(str(root / "__main__.py"), run_name="__main__"))
        )
        plan.outputs = loop.run_until_complete(_resolve_outputs())
    except pulumi.RunError as err:
        plan.error = str(err)
    except Exception as err:  # noqa: BLE001 - surfaced to the caller after the thread ends
        return {"exception": err}
    finally:
        plan.resources = monitor.records
        plan.warnings = capture.messages
        loop.close()
    return {}


async def _resolve_outputs() -> dict[str, Any]:
    root = pulumi.runtime.settings.get_root_resource()
    resolved: dict[str, Any] = {}
    for name, value in getattr(root, "outputs", {}).items():
        out = pulumi.Output.from_input(value)
        secret = await out.is_secret()
        resolved[name] = SECRET if secret else _deep_plain(await out.future())
    return resolved


def _deep_plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
