"""Destroy waits until the CSI drivers have released their volumes, and until the AWS Load Balancer Controller has
deleted its load balancers (components/waiters.py).

Three layers: the polling logic against a fake Kubernetes API (no cluster); the provider as `pulumi destroy` runs
it, through pulumi's own dynamic provider server (`python -m pulumi.dynamic`, as the `pulumi-python` plugin starts
it) against a loopback fake API server with exec authentication; and the wiring in the plan, which is what orders
`pulumi destroy`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from components import waiters
from components.waiters import EBS_CSI_DRIVER, EFS_CSI_DRIVER, VolumesNotReleased, leftovers, wait_for_release
from tests.conftest import ROOT, plan_for

NAME = "nim-on-eks-dev-storage"
WAITER_TYPE = "pulumi-python:dynamic/waiters:VolumesReleased"
TWO_MODELS = 'nim_models=["meta/llama-3.1-8b-instruct","meta/llama-3.2-1b-instruct"]'


def pv(name: str, driver: str = EBS_CSI_DRIVER, handle: str = "vol-0abc", phase: str = "Released",
       claim: tuple[str, str] | None = ("monitoring", "prometheus-db-0"), reclaim: str = "Delete",
       annotate: bool = True) -> dict:
    """A PersistentVolume as the API returns it (JSON), the way the CSI external-provisioner makes them."""
    return {
        "metadata": {"name": name,
                     "annotations": {waiters.PROVISIONED_BY: driver} if annotate else {},
                     "finalizers": ["kubernetes.io/pv-protection",
                                    "external-provisioner.volume.kubernetes.io/finalizer"]},
        "spec": {"csi": {"driver": driver, "volumeHandle": handle}, "persistentVolumeReclaimPolicy": reclaim,
                 **({"claimRef": {"namespace": claim[0], "name": claim[1]}} if claim else {})},
        "status": {"phase": phase},
    }


class FakeCoreV1:
    """kubernetes.client.CoreV1Api's list_persistent_volume, answering from a script (a list or an exception)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def list_persistent_volume(self, _preload_content=True, _request_timeout=None):
        assert _preload_content is False  # the waiter reads the raw JSON
        assert _request_timeout == waiters.REQUEST_TIMEOUT  # one poll never hangs past the deadline
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(data=json.dumps({"kind": "PersistentVolumeList", "items": answer}).encode())


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        assert len(self.sleeps) < 1000, "still waiting: the timeout never ends the wait"


def wait(api: FakeCoreV1, clock: FakeClock, drivers=(EBS_CSI_DRIVER, EFS_CSI_DRIVER), timeout=60, interval=10):
    wait_for_release(lambda: waiters.list_persistent_volumes(api), list(drivers), timeout=timeout, interval=interval,
                     cluster="nim-on-eks-dev", clock=clock, sleep=clock.sleep)


# ------------------------------------------------------------------------------------ polling (fake API, no cluster)


def test_leftover_pvs_keep_it_waiting_until_the_drivers_release_them():
    api = FakeCoreV1([pv("pvc-ebs"), pv("pvc-efs", EFS_CSI_DRIVER, "fs-1::fsap-1", claim=("nim", "llama-cache"))],
                     [pv("pvc-efs", EFS_CSI_DRIVER, "fs-1::fsap-1", phase="Released")],
                     [])
    clock = FakeClock()
    wait(api, clock)
    assert api.calls == 3 and clock.sleeps == [10, 10]


def test_nothing_left_finishes_at_once():
    api, clock = FakeCoreV1([]), FakeClock()
    wait(api, clock)
    assert api.calls == 1 and clock.sleeps == []


def test_only_volumes_its_drivers_will_delete_count():
    others = [
        pv("pvc-fsx", "fsx.csi.aws.com"),  # another driver: not ours to wait for
        pv("pvc-kept", reclaim="Retain"),  # kept on purpose: no driver ever releases it, waiting could only time out
    ]
    static = pv("pv-static", EFS_CSI_DRIVER, "fs-1", annotate=False)  # no provisioned-by: spec.csi.driver says whose
    assert leftovers(others, [EBS_CSI_DRIVER, EFS_CSI_DRIVER]) == []
    assert [x.name for x in leftovers([*others, static], [EFS_CSI_DRIVER])] == ["pv-static"]
    assert leftovers([pv("pvc-ebs")], [EFS_CSI_DRIVER]) == []  # a waiter for EFS alone ignores EBS volumes


def test_timeout_raises_naming_the_leftover_pvs_and_volume_handles():
    api = FakeCoreV1([pv("pvc-b", handle="vol-0b", phase="Bound", claim=("open-webui", "open-webui-data")),
                      pv("pvc-a", EFS_CSI_DRIVER, "fs-0123::fsap-0456", phase="Failed", claim=None)])
    clock = FakeClock()
    with pytest.raises(VolumesNotReleased) as err:
        wait(api, clock, timeout=60)
    text = str(err.value)
    assert text.startswith("2 PersistentVolume(s) of nim-on-eks-dev still exist after 60 s")
    assert ("  - pvc-a (efs.csi.aws.com, volume fs-0123::fsap-0456, Failed, claim none)\n"
            "  - pvc-b (ebs.csi.aws.com, volume vol-0b, Bound, claim open-webui/open-webui-data)") in text
    assert "kubectl describe pv" in text and "NIM_ON_EKS_SKIP_VOLUME_WAIT=1 pulumi destroy" in text
    assert sum(clock.sleeps) == 60  # it waited the whole timeout, polling every interval


def test_an_unreachable_api_is_retried_then_reported():
    api, clock = FakeCoreV1(ConnectionError("connection refused"), []), FakeClock()
    wait(api, clock)  # a passing fault: retried
    assert api.calls == 2
    api, clock = FakeCoreV1(ConnectionError("connection refused")), FakeClock()
    with pytest.raises(VolumesNotReleased, match=r"could not list the PersistentVolumes of nim-on-eks-dev for 60 s "
                                                 r"\(ConnectionError: connection refused\)"):
        wait(api, clock, timeout=60)


def test_an_api_that_refuses_access_fails_at_once():
    denied = Exception("Forbidden")
    denied.status = 403  # as kubernetes.client.ApiException carries it
    api, clock = FakeCoreV1(denied), FakeClock()
    with pytest.raises(VolumesNotReleased, match="refused to list PersistentVolumes .*needs cluster access"):
        wait(api, clock)
    assert clock.sleeps == []


def test_the_skip_variable_stops_waiting(monkeypatch):
    monkeypatch.setenv(waiters.SKIP_ENV, "1")
    waiters.VolumesReleasedProvider().delete("id", {"kubeconfig": "not even JSON", "drivers": [EBS_CSI_DRIVER]})


def test_create_and_update_keep_every_input_for_delete():
    props = {"cluster_name": "c", "drivers": [EBS_CSI_DRIVER], "kubeconfig": "{}", "timeout_seconds": 5,
             "__provider": "serialized"}
    provider = waiters.VolumesReleasedProvider()
    created = provider.create(props)
    assert created.id == "c-volumes-released"
    assert created.outs == {k: v for k, v in props.items() if k != "__provider"}
    assert provider.update("c-volumes-released", props, {**props, "timeout_seconds": 9}).outs["timeout_seconds"] == 9


# ------------------------------------------------------ the provider as `pulumi destroy` runs it (pulumi's own server)


class FakeApiServer:
    """A loopback Kubernetes API that serves /api/v1/persistentvolumes and /api/v1/services (every namespace) and
    records the bearer token it got."""

    def __init__(self, items: list[dict], services: list[dict] | None = None):
        self.items, self.services, self.tokens = items, services or [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                outer.tokens.append(self.headers.get("Authorization"))
                services = self.path.startswith("/api/v1/services")
                body = json.dumps({"kind": "ServiceList" if services else "PersistentVolumeList", "apiVersion": "v1",
                                   "items": outer.services if services else outer.items}).encode()
                self.send_response(200 if services or self.path.startswith("/api/v1/persistentvolumes") else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kubeconfig(self) -> str:
        """Shaped like pulumi-eks's: exec authentication (here a Python one-liner instead of `aws eks get-token`)."""
        credential = {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                      "status": {"token": "token-from-exec"}}
        return json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{self.server.server_port}"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "c"}}],
            "users": [{"name": "c", "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                "args": ["-c", f"print({json.dumps(json.dumps(credential))})"]}}}],
        })

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class DynamicProviderServer:
    """`python -u -m pulumi.dynamic` in a directory, as the `pulumi-python` plugin runs it; a gRPC client to it."""

    def __init__(self, cwd):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", waiters.SKIP_ENV)}
        self.process = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.dynamic"], cwd=cwd, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        port = self.process.stdout.readline().strip()
        assert port.isdigit(), self.process.stderr.read()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def create(self, props: dict):
        return self.stub.Create(provider_pb2.CreateRequest(urn=URN, properties=_struct(props)), timeout=60)

    def delete(self, props: dict):
        return self.stub.Delete(provider_pb2.DeleteRequest(id="x", urn=URN, properties=_struct(props)), timeout=120)

    def close(self):
        self.channel.close()
        self.process.kill()
        self.process.wait()


URN = f"urn:pulumi:dev::nim-on-eks::nim-on-eks:index:Storage${WAITER_TYPE}::{NAME}-volumes-released"


def _struct(props: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(props)
    return s


@pytest.fixture(scope="module")
def serialized_provider() -> str:
    """The `__provider` the program stores in the state (serialized under the mock runtime)."""
    waiter = plan_for().one(WAITER_TYPE)
    return waiter.revealed["__provider"]


def test_the_provider_is_pickled_by_reference(serialized_provider):
    raw = base64.b64decode(serialized_provider)
    assert b"components.waiters" in raw and b"VolumesReleasedProvider" in raw
    assert len(raw) < 200  # a reference, not the code: it loads whatever components/waiters.py says at destroy time


def test_destroy_runs_the_stored_provider_from_the_project_directory(serialized_provider):
    api = FakeApiServer([])
    server = DynamicProviderServer(ROOT)
    try:
        props = {"cluster_name": "nim-on-eks-dev", "drivers": [EBS_CSI_DRIVER, EFS_CSI_DRIVER],
                 "kubeconfig": api.kubeconfig(), "timeout_seconds": 30, "__provider": serialized_provider}
        created = server.create(props)
        outs = json_format.MessageToDict(created.properties)
        assert created.id == "nim-on-eks-dev-volumes-released"
        assert outs["drivers"] == [EBS_CSI_DRIVER, EFS_CSI_DRIVER] and outs["kubeconfig"] == props["kubeconfig"]

        server.delete(props)  # nothing left: done
        assert api.tokens == ["Bearer token-from-exec"]  # the kubeconfig's exec authentication was used

        api.items = [pv("pvc-0f1e", handle="vol-0123456789abcdef0", claim=("open-webui", "open-webui-data"))]
        with pytest.raises(grpc.RpcError) as err:
            server.delete({**props, "timeout_seconds": 0})
        assert "VolumesNotReleased" in err.value.details()
        assert "pvc-0f1e (ebs.csi.aws.com, volume vol-0123456789abcdef0, Released, claim open-webui/open-webui-data)" \
            in err.value.details()
    finally:
        server.close()
        api.close()


def test_the_provider_needs_the_project_directory(serialized_provider, tmp_path):
    """What must be importable at destroy time: `components.waiters`, from the plugin's working directory."""
    server = DynamicProviderServer(tmp_path)
    try:
        with pytest.raises(grpc.RpcError) as err:
            server.create({"cluster_name": "c", "drivers": [], "kubeconfig": "{}", "__provider": serialized_provider})
        assert "No module named 'components'" in err.value.details()
    finally:
        server.close()


# ------------------------------------------------------------------------------------- wiring: the destroy order


def waiter_of(plan):
    return plan.one(WAITER_TYPE, f"{NAME}-volumes-released")


def test_the_waiter_and_what_it_waits_for(dev_plan):
    waiter = waiter_of(dev_plan)
    assert waiter.inputs["drivers"] == [EBS_CSI_DRIVER, EFS_CSI_DRIVER]
    assert waiter.inputs["cluster_name"] == "nim-on-eks-dev"
    assert waiter.inputs["timeout_seconds"] == waiters.DEFAULT_TIMEOUT_SECONDS
    assert waiter.inputs["kubeconfig"] == "[secret]"  # kept secret in the state
    assert json.loads(waiter.revealed["kubeconfig"])["users"][0]["user"]["exec"]["command"] == "aws"
    assert waiter.parent == dev_plan.one("nim-on-eks:index:Storage").urn


@pytest.mark.parametrize("type_, name", [
    ("aws:eks/addon:Addon", f"{NAME}-ebs-csi"),
    ("aws:eks/addon:Addon", f"{NAME}-efs-csi"),
    ("aws:iam/role:Role", f"{NAME}-ebs-csi"),
    ("aws:iam/role:Role", f"{NAME}-efs-csi"),
    ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{NAME}-ebs-csi"),
    ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{NAME}-efs-csi"),
    ("kubernetes:storage.k8s.io/v1:StorageClass", f"{NAME}-gp3"),
    ("kubernetes:storage.k8s.io/v1:StorageClass", f"{NAME}-efs"),
    ("aws:efs/fileSystem:FileSystem", f"{NAME}-efs"),
    ("aws:eks/nodeGroup:NodeGroup", "nim-on-eks-dev-core"),  # the CSI controllers run on the core nodes
])
def test_what_it_waits_for_is_deleted_after_it(dev_plan, type_, name):
    waiter, other = waiter_of(dev_plan), dev_plan.one(type_, name)
    assert dev_plan.depends_on(waiter, other)
    assert not dev_plan.depends_on(other, waiter)  # no cycle: the add-on really goes after the waiter


def test_it_waits_for_every_mount_target(dev_plan):
    targets = dev_plan.of_type("aws:efs/mountTarget:MountTarget")
    assert len(targets) == 3
    assert all(dev_plan.depends_on(waiter_of(dev_plan), t) for t in targets)


def consumers(plan) -> list:
    """Everything that makes or mounts a volume: PVCs, StatefulSets, Deployments with volumes, the Prometheus chart."""
    found = [r for r in plan.resources if r.type in ("kubernetes:core/v1:PersistentVolumeClaim",
                                                     "kubernetes:apps/v1:StatefulSet")]
    found += [r for r in plan.of_type("kubernetes:apps/v1:Deployment")
              if any("persistentVolumeClaim" in v for v in r.inputs["spec"]["template"]["spec"].get("volumes", []))]
    found += [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "kube-prometheus-stack"]
    return found


def test_every_volume_consumer_is_deleted_before_it():
    plan = plan_for(TWO_MODELS)
    waiter, found = waiter_of(plan), consumers(plan)
    names = sorted(r.name for r in found)
    assert names == sorted([
        "nim-on-eks-dev-nim-llm-llama-3-1-8b-instruct-cache", "nim-on-eks-dev-nim-llm-llama-3-1-8b-instruct-sts",
        "nim-on-eks-dev-nim-llm-llama-3-2-1b-instruct-cache", "nim-on-eks-dev-nim-llm-llama-3-2-1b-instruct-sts",
        "nim-on-eks-dev-monitoring-kube-prometheus-stack",
        "nim-on-eks-dev-open-webui-data", "nim-on-eks-dev-open-webui-deployment",
    ]), names
    late = [r.name for r in found if not plan.depends_on(r, waiter)]
    assert late == [], f"not deleted before the waiter: {late}"


def test_without_monitoring_and_open_webui_the_models_still_wait():
    plan = plan_for("monitoring=false", "open_webui=false")
    waiter, found = waiter_of(plan), consumers(plan)
    assert sorted(r.name for r in found) == ["nim-on-eks-dev-nim-llm-llama3-8b-instruct-cache",
                                             "nim-on-eks-dev-nim-llm-llama3-8b-instruct-sts"]
    assert all(plan.depends_on(r, waiter) for r in found)


def test_a_missing_credential_plugin_is_named_not_mistaken_for_missing_access():
    """The kubernetes client only logs a failed exec plugin; the waiter says which command is missing."""
    kubeconfig = {"users": [{"name": "u", "user": {"exec": {"command": "no-such-aws-cli-here", "args": ["eks"]}}}]}
    with pytest.raises(RuntimeError, match="`no-such-aws-cli-here` is not on PATH"):
        waiters._kubernetes_lister(kubeconfig)


# ================================================================= load balancers (LoadBalancersReleased)

LB_NAME = "nim-on-eks-dev-load-balancer"
LB_WAITER_TYPE = "pulumi-python:dynamic/waiters:LoadBalancersReleased"
LB_URN = (f"urn:pulumi:dev::nim-on-eks::nim-on-eks:index:LoadBalancerController${LB_WAITER_TYPE}::"
          f"{LB_NAME}-load-balancers-released")


def svc(name: str, namespace: str = "envoy-gateway-system", *, finalizer: bool = True, lb_class: str | None =
        waiters.LOAD_BALANCER_CLASS, type_: str = "LoadBalancer", deleting: bool = True,
        hostname: str = "k8s-envoyga-envoy-0123456789.elb.us-west-2.amazonaws.com") -> dict:
    """A Service as the API returns it (JSON), the way Envoy Gateway makes the gateway's and the controller keeps it."""
    meta = {"name": name, "namespace": namespace,
            "finalizers": [waiters.LOAD_BALANCER_FINALIZER] if finalizer else []}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-27T23:00:00Z"
    spec = {"type": type_, **({"loadBalancerClass": lb_class} if lb_class else {})}
    status = {"loadBalancer": {"ingress": [{"hostname": hostname}]}} if hostname else {}
    return {"metadata": meta, "spec": spec, "status": status}


class FakeServices:
    """kubernetes.client.CoreV1Api's list_service_for_all_namespaces, answering from a script."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), 0

    def list_service_for_all_namespaces(self, _preload_content=True, _request_timeout=None):
        assert _preload_content is False and _request_timeout == waiters.REQUEST_TIMEOUT
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(data=json.dumps({"kind": "ServiceList", "items": answer}).encode())


def wait_lb(api: FakeServices, clock: FakeClock, timeout=60):
    waiters.wait_for_load_balancers(lambda: waiters.list_services(api), timeout=timeout, interval=10,
                                    cluster="nim-on-eks-dev", clock=clock, sleep=clock.sleep)


def test_a_service_of_the_controller_keeps_it_waiting_until_its_nlb_is_gone():
    api = FakeServices([svc("envoy-gw")], [svc("envoy-gw", hostname="")], [])
    clock = FakeClock()
    wait_lb(api, clock)
    assert api.calls == 3 and clock.sleeps == [10, 10]


def test_only_services_holding_an_nlb_of_the_controller_count():
    others = [
        svc("cluster-ip", finalizer=False, lb_class=None, type_="ClusterIP", deleting=False),
        svc("in-tree", finalizer=False, lb_class=None),  # the cloud provider's, not the controller's
        svc("other-class", finalizer=False, lb_class="example.com/lb"),
    ]
    assert waiters.load_balancer_services(others) == []
    finalizer_only = svc("changed-type", finalizer=True, lb_class=None, type_="ClusterIP")  # its NLB still goes
    not_yet = svc("new", finalizer=False, deleting=False, hostname="")  # of the class: the controller may make one
    assert [s.name for s in waiters.load_balancer_services([*others, finalizer_only, not_yet])] == ["changed-type",
                                                                                                   "new"]


def test_the_timeout_names_each_service_and_whether_it_is_being_deleted():
    api = FakeServices([svc("envoy-gw"), svc("forgotten", "default", deleting=False, hostname="")])
    clock = FakeClock()
    with pytest.raises(waiters.LoadBalancersNotReleased) as err:
        wait_lb(api, clock)
    text = str(err.value)
    assert text.startswith("2 Service(s) of nim-on-eks-dev still hold a load balancer of the AWS Load Balancer "
                           "Controller after 60 s")
    assert ("  - default/forgotten (not being deleted: delete what owns it; load balancer not reported)\n"
            "  - envoy-gateway-system/envoy-gw (being deleted; load balancer "
            "k8s-envoyga-envoy-0123456789.elb.us-west-2.amazonaws.com)") in text
    assert "NIM_ON_EKS_SKIP_LOAD_BALANCER_WAIT=1 pulumi destroy" in text and sum(clock.sleeps) == 60


def test_an_api_refusing_access_fails_at_once_and_an_unreachable_one_is_retried():
    denied = Exception("Forbidden")
    denied.status = 403
    clock = FakeClock()
    with pytest.raises(waiters.LoadBalancersNotReleased, match="refused to list Services .*needs cluster access"):
        wait_lb(FakeServices(denied), clock)
    assert clock.sleeps == []
    api = FakeServices(ConnectionError("connection refused"), [])
    wait_lb(api, FakeClock())
    assert api.calls == 2
    with pytest.raises(waiters.LoadBalancersNotReleased, match=r"could not list the Services of nim-on-eks-dev"):
        wait_lb(FakeServices(ConnectionError("connection refused")), FakeClock())


def test_the_load_balancer_skip_variable_stops_waiting(monkeypatch):
    monkeypatch.setenv(waiters.LOAD_BALANCER_SKIP_ENV, "1")
    waiters.LoadBalancersReleasedProvider().delete("id", {"kubeconfig": "not even JSON"})


@pytest.fixture(scope="module")
def serialized_lb_provider() -> str:
    return plan_for().one(LB_WAITER_TYPE, f"{LB_NAME}-load-balancers-released").revealed["__provider"]


def test_the_load_balancer_provider_is_pickled_by_reference(serialized_lb_provider):
    raw = base64.b64decode(serialized_lb_provider)
    assert b"components.waiters" in raw and b"LoadBalancersReleasedProvider" in raw and len(raw) < 200


def test_destroy_runs_the_stored_load_balancer_provider(serialized_lb_provider):
    api = FakeApiServer([], [svc("envoy-gw")])
    server = DynamicProviderServer(ROOT)
    try:
        props = {"cluster_name": "nim-on-eks-dev", "kubeconfig": api.kubeconfig(), "timeout_seconds": 0,
                 "__provider": serialized_lb_provider}
        created = server.stub.Create(provider_pb2.CreateRequest(urn=LB_URN, properties=_struct(props)), timeout=60)
        assert created.id == "nim-on-eks-dev-load-balancers-released"
        with pytest.raises(grpc.RpcError) as err:
            server.stub.Delete(provider_pb2.DeleteRequest(id="x", urn=LB_URN, properties=_struct(props)), timeout=60)
        assert "LoadBalancersNotReleased" in err.value.details() and "envoy-gateway-system/envoy-gw" in \
            err.value.details()
        api.services = []  # the controller deleted the NLB and removed its finalizer
        server.stub.Delete(provider_pb2.DeleteRequest(id="x", urn=LB_URN, properties=_struct(props)), timeout=60)
        assert set(api.tokens) == {"Bearer token-from-exec"}
    finally:
        server.close()
        api.close()


def lb_waiter_of(plan):
    return plan.one(LB_WAITER_TYPE, f"{LB_NAME}-load-balancers-released")


def test_the_load_balancer_waiter(dev_plan):
    waiter = lb_waiter_of(dev_plan)
    assert waiter.inputs["cluster_name"] == "nim-on-eks-dev"
    assert waiter.inputs["timeout_seconds"] == waiters.LOAD_BALANCER_TIMEOUT_SECONDS
    assert waiter.inputs["kubeconfig"] == "[secret]"
    assert waiter.parent == dev_plan.one("nim-on-eks:index:LoadBalancerController").urn


@pytest.mark.parametrize("type_, name", [
    ("kubernetes:helm.sh/v3:Release", f"{LB_NAME}-controller"),
    ("aws:eks/podIdentityAssociation:PodIdentityAssociation", f"{LB_NAME}-controller"),
    ("aws:iam/role:Role", f"{LB_NAME}-role"),
    ("aws:iam/policy:Policy", f"{LB_NAME}-policy"),
    ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{LB_NAME}-policy"),
    ("kubernetes:karpenter.sh/v1:NodePool", "nim-on-eks-dev-karpenter-cpu-pool"),  # where the controller runs
    ("aws:eks/addon:Addon", "nim-on-eks-dev-pod-identity-agent"),  # its credentials
    ("aws:ec2/natGateway:NatGateway", "nim-on-eks-dev-nat-0"),  # its way to the ELB API
    ("aws:ec2/subnet:Subnet", "nim-on-eks-dev-public-0"),  # where an internet-facing NLB lives
    ("aws:ec2/subnet:Subnet", "nim-on-eks-dev-private-0"),  # where an internal one does
])
def test_what_the_load_balancer_waiter_needs_is_deleted_after_it(dev_plan, type_, name):
    waiter, other = lb_waiter_of(dev_plan), dev_plan.one(type_, name)
    assert dev_plan.depends_on(waiter, other)
    assert not dev_plan.depends_on(other, waiter)
