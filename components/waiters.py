"""Destroy-time waiters: resources that do nothing on `pulumi up` and, on `pulumi destroy`, hold back what they
depend on until something Kubernetes does asynchronously has finished.

`LoadBalancersReleased` (at the end) waits, the same way, for the AWS Load Balancer Controller to delete the NLBs of
Services made in the cluster (the gateway's, by Envoy Gateway), before the controller, its nodes and the VPC go.

`VolumesReleased` waits for the CSI drivers. Deleting a PersistentVolumeClaim only starts the release of its
volume: the driver's controller (external-provisioner) deletes the EBS volume or EFS access point behind the
PersistentVolume later, and only then removes the PV and its finalizer. If the add-on (the controller), the EFS
mount targets and file system or the cluster go first, the volumes are never deleted. So the waiter depends on the
add-ons, their IAM roles, the StorageClasses and the mount targets, every consumer of volumes depends on the
waiter, and the graph does the ordering: consumers, then the waiter (until no PV of its drivers is left), then the
add-ons, mount targets, file system, core nodes (where the controllers run) and cluster.

Why a Pulumi dynamic resource, checked against pulumi 3.272 (installed) and its docs:
- Resource hooks cannot do it: before/after-delete hooks live in the program, so `pulumi destroy` refuses to run
  without `--run-program` when a resource has delete hooks (ResourceHookBinding docs; engine change "Prevent destroy
  without running the program if any resource have delete hooks", v3.182.0). A plain `pulumi destroy` must work.
- pulumi-command (`kubectl wait ...` as a delete command) would need kubectl and a shell on the user's machine, and
  a further provider plugin; here the Kubernetes client is a pinned package in the project's own virtualenv.
- A dynamic resource's provider is stored in the state (input `__provider`, a dill pickle) and run by the
  `pulumi-python` plugin as `<virtualenv>/bin/python -m pulumi.dynamic` with the project directory as working
  directory, so its `delete` runs on a plain `pulumi destroy`, without the program.

What that requires (tests/test_destroy_volumes.py checks the first two through pulumi's own dynamic provider
server, started as the plugin starts it):
- dill pickles this provider's class *by reference* (module and name; pulumi no longer rewrites `__module__` to
  `__main__`, pulumi/dynamic/dynamic.py), so `components.waiters.VolumesReleasedProvider` must stay importable under
  that name from the project directory: never rename or move it, every stack's state names it. This module imports
  only the standard library and pulumi; `kubernetes` (requirements.txt) is imported when a delete runs.
- `delete` gets the resource's *outputs* from the state, not the program's inputs: create and update return every
  input as an output.
- The dynamic provider does not accept secrets: the engine hands it plain values and keeps an output secret when
  the input of the same name was (`annotateSecrets`, pulumi sdk/go/common/resource/plugin/provider_plugin.go);
  `additional_secret_outputs` says so once more for the kubeconfig, which is a secret input.
- Deleting the resource waits for every volume of its drivers. Renaming it or dropping it from the program would
  make `pulumi up` delete it while the volumes are in use (and time out): keep the name, or give it an alias.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import pulumi
import pulumi.dynamic
from pulumi.runtime.rpc import unwrap_rpc_secret

EBS_CSI_DRIVER = "ebs.csi.aws.com"
EFS_CSI_DRIVER = "efs.csi.aws.com"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"  # set by the CSI external-provisioner on every PV it makes
# Prometheus' pod may take its whole termination grace period (600 s by default: the Prometheus CRD of
# kube-prometheus-stack 88.5.3, which leaves it unset) before its PVC is released, then the volume is detached and
# deleted: 20 minutes covers that with room to spare.
DEFAULT_TIMEOUT_SECONDS = 1200
POLL_SECONDS = 10
REQUEST_TIMEOUT = (10, 60)  # seconds to connect, to read
# `NIM_ON_EKS_SKIP_VOLUME_WAIT=1 pulumi destroy` gives up waiting (e.g. the cluster was deleted outside Pulumi).
SKIP_ENV = "NIM_ON_EKS_SKIP_VOLUME_WAIT"


class VolumesNotReleased(Exception):
    """Volumes of the drivers are still there when the wait ends, or the cluster cannot be asked."""


@dataclass(frozen=True)
class Leftover:
    """A PersistentVolume a CSI driver still has to release."""

    name: str
    driver: str
    volume_handle: str
    phase: str
    claim: str

    def describe(self) -> str:
        return (f"{self.name} ({self.driver}, volume {self.volume_handle or '?'}, {self.phase or 'no phase'}, "
                f"claim {self.claim or 'none'})")


def pv_driver(pv: dict[str, Any]) -> str:
    """The CSI driver behind a PersistentVolume (API JSON): who provisioned it, else the CSI source's driver."""
    annotations = (pv.get("metadata") or {}).get("annotations") or {}
    csi = (pv.get("spec") or {}).get("csi") or {}
    return annotations.get(PROVISIONED_BY) or csi.get("driver") or ""


def leftovers(pvs: Iterable[dict[str, Any]], drivers: Sequence[str]) -> list[Leftover]:
    """PVs of `drivers` whose volume the driver will delete (reclaim policy Delete) and has not yet deleted.

    A PV with reclaim policy Retain keeps its volume on purpose and no driver ever releases it, so waiting for it
    could only time out; README says how to find such volumes.
    """
    found = []
    for pv in pvs:
        spec = pv.get("spec") or {}
        driver = pv_driver(pv)
        if driver not in drivers or spec.get("persistentVolumeReclaimPolicy", "Delete") != "Delete":
            continue
        claim = spec.get("claimRef") or {}
        found.append(Leftover(
            name=(pv.get("metadata") or {}).get("name", "?"),
            driver=driver,
            volume_handle=(spec.get("csi") or {}).get("volumeHandle", ""),
            phase=(pv.get("status") or {}).get("phase", ""),
            claim="/".join(p for p in (claim.get("namespace"), claim.get("name")) if p),
        ))
    return sorted(found, key=lambda leftover: leftover.name)


def list_persistent_volumes(core_v1: Any) -> list[dict[str, Any]]:
    """Every PersistentVolume as the API's JSON, from a kubernetes.client.CoreV1Api (or a fake with its method)."""
    # connect and read timeouts: a black-holed endpoint must not stall one poll past the waiter's own deadline
    response = core_v1.list_persistent_volume(_preload_content=False, _request_timeout=REQUEST_TIMEOUT)
    return json.loads(response.data).get("items") or []


def wait_for_release(list_pvs: Callable[[], list[dict[str, Any]]], drivers: Sequence[str], *,
                     timeout: float = DEFAULT_TIMEOUT_SECONDS, interval: float = POLL_SECONDS,
                     cluster: str = "the cluster", clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll until no PV of `drivers` is left; raise VolumesNotReleased naming them after `timeout` seconds.

    An API that refuses us (401, 403) fails at once; any other error (network, throttling) is retried.
    """
    deadline = clock() + timeout
    remaining: list[Leftover] | None = None
    last_error: Exception | None = None
    while True:
        try:
            remaining, last_error = leftovers(list_pvs(), drivers), None
        except Exception as err:  # noqa: BLE001 - reported below with what it was
            if getattr(err, "status", None) in (401, 403):
                raise VolumesNotReleased(
                    f"the Kubernetes API of {cluster} refused to list PersistentVolumes ({_short(err)}): the identity "
                    "running `pulumi destroy` needs cluster access (the identity that created the cluster has it, "
                    "and so do the cluster_admins)") from err
            last_error = err
        if remaining == [] and last_error is None:
            return
        if clock() >= deadline:
            raise VolumesNotReleased(_timeout_message(remaining, last_error, drivers, timeout, cluster))
        sleep(interval)


def _timeout_message(remaining: list[Leftover] | None, error: Exception | None, drivers: Sequence[str],
                     timeout: float, cluster: str) -> str:
    skip = (f"To stop waiting anyway (what is left may then outlive the stack; README \"Destroy\" says how to find "
            f"it), run `{SKIP_ENV}=1 pulumi destroy`.")
    if remaining is None:
        return (f"could not list the PersistentVolumes of {cluster} for {timeout:g} s ({_short(error)}), so it is "
                f"unknown whether {', '.join(drivers)} released their volumes; the CSI add-ons and the cluster are "
                f"kept. Check `kubectl get pv`, then run `pulumi destroy` again. {skip}")
    lines = "\n".join(f"  - {leftover.describe()}" for leftover in remaining)
    return (f"{len(remaining)} PersistentVolume(s) of {cluster} still exist after {timeout:g} s, so their EBS "
            f"volumes / EFS access points are not deleted yet; the CSI add-ons, the EFS file system and the cluster "
            f"are kept until they are:\n{lines}\n"
            "`kubectl describe pv <name>` shows why the driver has not deleted one (a claim still in use, a volume "
            f"still attached); delete what holds it, then run `pulumi destroy` again. {skip}")


def _short(err: Exception | None) -> str:
    text = f"{type(err).__name__}: {err}" if err else "no answer"
    return text if len(text) <= 300 else text[:297] + "..."


def _kubernetes_lister(kubeconfig: dict[str, Any]) -> Callable[[], list[dict[str, Any]]]:
    """Lists PVs with the pinned kubernetes client; a fresh client each time, so the exec token
    (`aws eks get-token`, valid 15 minutes) never expires during a long wait."""
    from kubernetes import client, config  # imported when a delete runs, in the `pulumi-python` plugin's process

    # The kubernetes client only logs a failed exec plugin and sends the request unauthenticated; the 401 that
    # follows would read like missing cluster access. Say what is missing instead.
    for user in kubeconfig.get("users") or []:
        command = ((user.get("user") or {}).get("exec") or {}).get("command")
        if command and shutil.which(command) is None:
            raise RuntimeError(f"`{command}` is not on PATH: the kubeconfig's credential plugin (`{command} eks "
                               "get-token`) needs it to reach the cluster and check its volumes")

    def list_pvs() -> list[dict[str, Any]]:
        with config.new_client_from_config_dict(kubeconfig) as api_client:
            return list_persistent_volumes(client.CoreV1Api(api_client))

    return list_pvs


def _outputs(props: dict[str, Any]) -> dict[str, Any]:
    """Every input as an output, so `delete` (which only gets the state's outputs) has them."""
    return {k: v for k, v in props.items() if k != pulumi.dynamic.dynamic.PROVIDER_KEY}


class VolumesReleasedProvider(pulumi.dynamic.ResourceProvider):
    """create/update: nothing (the inputs become outputs). delete: wait until the drivers released their volumes.

    Stored in every stack's state by reference (components.waiters.VolumesReleasedProvider): do not rename or move.
    """

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_=f"{props['cluster_name']}-volumes-released", outs=_outputs(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=_outputs(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if os.environ.get(SKIP_ENV, "").strip().lower() in ("1", "true", "yes"):
            return
        kubeconfig = unwrap_rpc_secret(props["kubeconfig"])  # the engine sends it plain; be sure
        timeout = props.get("timeout_seconds")
        wait_for_release(
            _kubernetes_lister(json.loads(kubeconfig) if isinstance(kubeconfig, str) else kubeconfig),
            list(props["drivers"]),
            timeout=float(DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout),
            cluster=props.get("cluster_name") or "the cluster",
        )


class VolumesReleased(pulumi.dynamic.Resource, module="waiters", name="VolumesReleased"):
    """Deleted only once no PersistentVolume of `drivers` is left in the cluster (see the module docstring).

    Name it `<something>-volumes-released`; its `drivers` input says what it waits for.
    """

    def __init__(self, name: str, *, cluster_name: str, drivers: Sequence[str], kubeconfig: pulumi.Input[str],
                 timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS, opts: pulumi.ResourceOptions | None = None):
        super().__init__(
            VolumesReleasedProvider(), name,
            {"cluster_name": cluster_name, "drivers": list(drivers),
             "kubeconfig": pulumi.Output.secret(kubeconfig), "timeout_seconds": timeout_seconds},
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])),
        )


# ------------------------------------------------------------------------------------------- load balancers

# The AWS Load Balancer Controller's finalizer on every Service whose NLB it made, and the Service class it takes
# (planning/endpoint.py: pkg/shared_constants/finalizers.go, pkg/config/service_config.go @ v3.5.0). Restated here:
# this module imports only the standard library and pulumi (see the module docstring).
LOAD_BALANCER_FINALIZER = "service.k8s.aws/resources"
LOAD_BALANCER_CLASS = "service.k8s.aws/nlb"
# Deleting an NLB, its target groups and security groups takes the controller a minute or two; a Gateway's Service
# goes only after Envoy Gateway has removed it. 15 minutes leaves room for AWS API throttling and retries.
LOAD_BALANCER_TIMEOUT_SECONDS = 900
# `NIM_ON_EKS_SKIP_LOAD_BALANCER_WAIT=1 pulumi destroy` gives up waiting (e.g. the cluster was deleted outside Pulumi).
LOAD_BALANCER_SKIP_ENV = "NIM_ON_EKS_SKIP_LOAD_BALANCER_WAIT"


class LoadBalancersNotReleased(Exception):
    """Services with load balancers of the controller are still there when the wait ends, or the cluster cannot be
    asked."""


@dataclass(frozen=True)
class LeftoverService:
    """A Service whose NLB the AWS Load Balancer Controller has made (or will make) and not yet deleted."""

    namespace: str
    name: str
    deleting: bool
    hostname: str

    def describe(self) -> str:
        state = "being deleted" if self.deleting else "not being deleted: delete what owns it"
        return f"{self.namespace}/{self.name} ({state}; load balancer {self.hostname or 'not reported'})"


def load_balancer_services(services: Iterable[dict[str, Any]]) -> list[LeftoverService]:
    """Services that still hold an NLB of the controller: its finalizer on them (it made one and has not deleted
    it), or of its class and type LoadBalancer (it may be making one)."""
    found = []
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        ours = LOAD_BALANCER_FINALIZER in (meta.get("finalizers") or []) or (
            spec.get("type") == "LoadBalancer" and spec.get("loadBalancerClass") == LOAD_BALANCER_CLASS)
        if not ours:
            continue
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}]
        found.append(LeftoverService(namespace=meta.get("namespace", "default"), name=meta.get("name", "?"),
                                     deleting=bool(meta.get("deletionTimestamp")),
                                     hostname=ingress[0].get("hostname", "")))
    return sorted(found, key=lambda s: (s.namespace, s.name))


def list_services(core_v1: Any) -> list[dict[str, Any]]:
    """Every Service of every namespace as the API's JSON, from a kubernetes.client.CoreV1Api (or a fake)."""
    response = core_v1.list_service_for_all_namespaces(_preload_content=False, _request_timeout=REQUEST_TIMEOUT)
    return json.loads(response.data).get("items") or []


def wait_for_load_balancers(list_svcs: Callable[[], list[dict[str, Any]]], *,
                            timeout: float = LOAD_BALANCER_TIMEOUT_SECONDS, interval: float = POLL_SECONDS,
                            cluster: str = "the cluster", clock: Callable[[], float] = time.monotonic,
                            sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll until no Service holds an NLB of the controller; raise LoadBalancersNotReleased naming them after
    `timeout` seconds. An API that refuses us (401, 403) fails at once; other errors are retried."""
    deadline = clock() + timeout
    remaining: list[LeftoverService] | None = None
    last_error: Exception | None = None
    while True:
        try:
            remaining, last_error = load_balancer_services(list_svcs()), None
        except Exception as err:  # noqa: BLE001 - reported below with what it was
            if getattr(err, "status", None) in (401, 403):
                raise LoadBalancersNotReleased(
                    f"the Kubernetes API of {cluster} refused to list Services ({_short(err)}): the identity running "
                    "`pulumi destroy` needs cluster access (the identity that created the cluster has it, and so do "
                    "the cluster_admins)") from err
            last_error = err
        if remaining == [] and last_error is None:
            return
        if clock() >= deadline:
            raise LoadBalancersNotReleased(_load_balancer_timeout_message(remaining, last_error, timeout, cluster))
        sleep(interval)


def _load_balancer_timeout_message(remaining: list[LeftoverService] | None, error: Exception | None,
                                   timeout: float, cluster: str) -> str:
    skip = (f"To stop waiting anyway (the NLB and its security groups may then outlive the stack and keep the VPC "
            f"from being deleted; README \"Load balancer\" says how to find them), run "
            f"`{LOAD_BALANCER_SKIP_ENV}=1 pulumi destroy`.")
    if remaining is None:
        return (f"could not list the Services of {cluster} for {timeout:g} s ({_short(error)}), so it is unknown "
                "whether the AWS Load Balancer Controller deleted its load balancers; the controller, the nodes and "
                f"the VPC are kept. Check `kubectl get svc -A`, then run `pulumi destroy` again. {skip}")
    lines = "\n".join(f"  - {s.describe()}" for s in remaining)
    return (f"{len(remaining)} Service(s) of {cluster} still hold a load balancer of the AWS Load Balancer "
            f"Controller after {timeout:g} s; the controller, its IAM role, the nodes and the VPC are kept until "
            f"they are gone:\n{lines}\n`kubectl -n <namespace> describe svc <name>` and the controller's log "
            "(`kubectl -n kube-system logs deploy/aws-load-balancer-controller`) say why; fix that, then run "
            f"`pulumi destroy` again. {skip}")


def _kubernetes_service_lister(kubeconfig: dict[str, Any]) -> Callable[[], list[dict[str, Any]]]:
    """Lists Services with the pinned kubernetes client, a fresh client (and token) for each poll."""
    from kubernetes import client, config  # imported when a delete runs, in the `pulumi-python` plugin's process

    _lister_checks(kubeconfig)

    def list_svcs() -> list[dict[str, Any]]:
        with config.new_client_from_config_dict(kubeconfig) as api_client:
            return list_services(client.CoreV1Api(api_client))

    return list_svcs


def _lister_checks(kubeconfig: dict[str, Any]) -> None:
    for user in kubeconfig.get("users") or []:
        command = ((user.get("user") or {}).get("exec") or {}).get("command")
        if command and shutil.which(command) is None:
            raise RuntimeError(f"`{command}` is not on PATH: the kubeconfig's credential plugin (`{command} eks "
                               "get-token`) needs it to reach the cluster and check its load balancers")


class LoadBalancersReleasedProvider(pulumi.dynamic.ResourceProvider):
    """create/update: nothing (the inputs become outputs). delete: wait until no Service holds an NLB of the AWS
    Load Balancer Controller.

    Stored in every stack's state by reference (components.waiters.LoadBalancersReleasedProvider): do not rename or
    move, as VolumesReleasedProvider.
    """

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_=f"{props['cluster_name']}-load-balancers-released",
                                           outs=_outputs(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=_outputs(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if os.environ.get(LOAD_BALANCER_SKIP_ENV, "").strip().lower() in ("1", "true", "yes"):
            return
        kubeconfig = unwrap_rpc_secret(props["kubeconfig"])
        timeout = props.get("timeout_seconds")
        wait_for_load_balancers(
            _kubernetes_service_lister(json.loads(kubeconfig) if isinstance(kubeconfig, str) else kubeconfig),
            timeout=float(LOAD_BALANCER_TIMEOUT_SECONDS if timeout is None else timeout),
            cluster=props.get("cluster_name") or "the cluster",
        )


class LoadBalancersReleased(pulumi.dynamic.Resource, module="waiters", name="LoadBalancersReleased"):
    """Deleted only once no Service holds a load balancer of the AWS Load Balancer Controller: it depends on the
    controller (and its IAM), what makes such Services depends on it, so on destroy the Services go, then this
    waits while the controller deletes their NLBs, then the controller, nodes and VPC go.

    Name it `<something>-load-balancers-released`; never rename it (a delete waits for every such Service).
    """

    def __init__(self, name: str, *, cluster_name: str, kubeconfig: pulumi.Input[str],
                 timeout_seconds: int = LOAD_BALANCER_TIMEOUT_SECONDS, opts: pulumi.ResourceOptions | None = None):
        super().__init__(
            LoadBalancersReleasedProvider(), name,
            {"cluster_name": cluster_name, "kubeconfig": pulumi.Output.secret(kubeconfig),
             "timeout_seconds": timeout_seconds},
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])),
        )
