"""Facts about the workloads that more than one part of the program must agree on: NIM's uid (the NIM pods run as
it, the EFS access points of the model cache map every client to it), the size of Open WebUI's data volume (the
component requests it, the cost estimate prices it), and what each pod on Karpenter's CPU NodePool requests
(CPU_POOL, and CPU_POOL_JOBS for the pre-cache Jobs: the components put it in their values, the cost estimate sizes
the CPU nodes from it). Plain data; scheduling facts live in planning/scheduling.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

# NIM containers run as uid/gid 1000 (NVIDIA NIM for LLMs docs; FACTS.md); the EFS access points map clients to it.
NIM_UID = 1000
# Open WebUI's volume: accounts, chats, settings and its embedding model (gp3, GiB).
OPEN_WEBUI_DATA_GB = 10

ANY_ARCH = ("amd64", "arm64")


@dataclass(frozen=True)
class Requests:
    """A container's CPU and memory requests."""

    cpu_m: int
    memory_mib: int

    def as_k8s(self) -> dict[str, str]:
        """As Kubernetes quantities, in whole cores and GiB where they are whole."""
        cpu = str(self.cpu_m // 1000) if self.cpu_m % 1000 == 0 and self.cpu_m else f"{self.cpu_m}m"
        memory = f"{self.memory_mib // 1024}Gi" if self.memory_mib % 1024 == 0 and self.memory_mib else \
            f"{self.memory_mib}Mi"
        return {"cpu": cpu, "memory": memory}


@dataclass(frozen=True)
class PoolWorkload:
    """A pod that runs on Karpenter's CPU NodePool, as the scheduler (and Karpenter) sizes it: the requests of all
    its containers together, times `replicas`, while the config switch `when` is on (None: always)."""

    name: str  # the workload's name in the cluster (Deployment, StatefulSet, or the operator's Prometheus object)
    cpu_m: int
    memory_mib: int
    replicas: int = 1
    # a StackConfig switch (monitoring, open_webui, aiperf) or HTTP_ADD_ON (planning/scaling.needs_interceptor);
    # planning/config.py pool_switches gives them all for a config
    when: str | None = None
    arches: tuple[str, ...] = ANY_ARCH  # the node architectures its images run on (planning/versions.py)
    sidecars: tuple[Requests, ...] = ()  # containers a chart or operator adds beside the main one, included above

    @property
    def main(self) -> Requests:
        """The main container's requests: the pod's less its sidecars'."""
        return Requests(self.cpu_m - sum(s.cpu_m for s in self.sidecars),
                        self.memory_mib - sum(s.memory_mib for s in self.sidecars))

    def enabled(self, switches: dict[str, bool]) -> bool:
        return self.when is None or switches[self.when]


# Karpenter's controller, one replica on each core node (planning/pools.py adds it up with the rest of the core's
# pods). 1 GiB as Karpenter's getting-started guide asks (website/content/en/v1.14/getting-started/
# getting-started-with-karpenter/scripts/step08-apply-helm-chart.sh @ 1d927085: 1 CPU, 1Gi); half a CPU, as this
# project always asked: a small cluster's controller mostly waits on the API server and EC2.
KARPENTER_CONTROLLER = Requests(cpu_m=500, memory_mib=1024)

# The prometheus-operator's config-reloader sidecar in the Prometheus and Alertmanager pods. The chart passes its
# requests to the operator (--config-reloader-*-request, kube-prometheus-stack 88.5.3
# templates/prometheus-operator/deployment.yaml), 0 when unset; a small Go process that reloads on change.
CONFIG_RELOADER = Requests(cpu_m=10, memory_mib=32)
# Each of Grafana's two k8s-sidecar containers (dashboards, datasources: grafana 12.11.1 with kube-prometheus-stack's
# values), a Python process watching ConfigMaps; the chart requests nothing (sidecar.resources: {}).
GRAFANA_SIDECAR = Requests(cpu_m=10, memory_mib=64)

# Every pod on the CPU NodePool: the components take their requests from here, the cost estimate sizes the CPU
# nodes from it. Baselines are kube-prometheus's (prometheus-operator/kube-prometheus jsonnet/kube-prometheus/
# components/*.libsonnet: prometheus 400Mi @ 06e3fcc1, alertmanager 4m/100Mi @ 07136d1d, grafana and the operator
# 100m/100Mi @ 0bf34a24, kube-state-metrics 10m/190Mi @ 01004de7) and each project's docs; where ours differ, the
# comment says why. Names are the chart's for the release `kube-prometheus-stack` (its fullname).
CPU_POOL: dict[str, PoolWorkload] = {
    # 1 GiB, not kube-prometheus's 400Mi floor for a bare cluster: this one also keeps every GPU's DCGM series and
    # every model's NIM series, 15 days by default, and its head block of recent samples lives in memory.
    "prometheus": PoolWorkload("kube-prometheus-stack-prometheus", 200 + CONFIG_RELOADER.cpu_m,
                               1024 + CONFIG_RELOADER.memory_mib, when="monitoring", sidecars=(CONFIG_RELOADER,)),
    "alertmanager": PoolWorkload("kube-prometheus-stack-alertmanager", 10 + CONFIG_RELOADER.cpu_m,
                                 100 + CONFIG_RELOADER.memory_mib, when="monitoring", sidecars=(CONFIG_RELOADER,)),
    # 256 MiB: Grafana's own minimum recommended memory (grafana/grafana docs/sources/setup-grafana/installation/
    # _index.md, "255 MB"), above kube-prometheus's 100Mi.
    "grafana": PoolWorkload("kube-prometheus-stack-grafana", 100 + 2 * GRAFANA_SIDECAR.cpu_m,
                            256 + 2 * GRAFANA_SIDECAR.memory_mib, when="monitoring",
                            sidecars=(GRAFANA_SIDECAR, GRAFANA_SIDECAR)),
    "prometheus-operator": PoolWorkload("kube-prometheus-stack-operator", 100, 100, when="monitoring"),
    "kube-state-metrics": PoolWorkload("kube-prometheus-stack-kube-state-metrics", 10, 190, when="monitoring"),
    # A chat server that loads its embedding model into memory; mostly idle between messages.
    "open-webui": PoolWorkload("open-webui", 250, 1024, when="open_webui"),
    # A benchmark client must not be short of CPU: its own delays would enter the latencies it measures. AIPerf
    # installs on amd64 only (planning/versions.py AIPERF_ARCHES).
    "aiperf": PoolWorkload("aiperf", 1000, 2048, when="aiperf", arches=("amd64",)),
}
# KEDA 2.20.2: requests as the chart's defaults (keda values.yaml `resources.*`, also keda.sh/docs/2.20/operate/
# cluster); one replica each (the chart's default: the operator is leader-elected, its metrics server and webhooks
# serve the API server, which retries). The HTTP add-on 0.15.0: the interceptor proxies every request to a model at
# zero, so two replicas (a node drain or spot interruption never leaves none); the external scaler only answers KEDA
# (one: if it restarts, scaling waits a moment); no operator (only HTTPScaledObject needs it; components/scaling.py).
# The add-on's requests are below its chart defaults (250m each, 1.75 CPU for its default seven pods); its limits
# (components/scaling.py) leave room for bursts of traffic.
HTTP_ADD_ON = "http_add_on"  # the condition: planning/scaling.needs_interceptor (a model at zero, or monitoring off)
CPU_POOL.update({w.name: w for w in (
    PoolWorkload("keda-operator", cpu_m=100, memory_mib=100, ),
    PoolWorkload("keda-operator-metrics-apiserver", cpu_m=100, memory_mib=100, ),
    PoolWorkload("keda-admission-webhooks", cpu_m=100, memory_mib=100, ),
    PoolWorkload("keda-add-ons-http-interceptor", cpu_m=100, memory_mib=64, replicas=2, when=HTTP_ADD_ON),
    PoolWorkload("keda-add-ons-http-external-scaler", cpu_m=50, memory_mib=32, when=HTTP_ADD_ON),
)})



# The authenticated endpoint (planning/gateway.py), while the `gateway` switch is on; the rate limit service and its
# Redis only while a key has a token limit. EG's controller asks its chart's memory (gateway-helm v1.9.0 values.yaml
# deployment.envoyGateway.resources: 100m, 256Mi) and half its CPU, as the AI Gateway's controller: both translate
# configuration when an object changes and idle otherwise (a handful of routes here). Each proxy pod holds Envoy, EG's shutdown manager (EG v1.9.0
# api/v1alpha1/shared_types.go: 10m, 32Mi) and the AI Gateway's external processor. Requests are what the scheduler
# reserves, not a ceiling (no CPU limits): LLM traffic is a few requests a second, each waiting seconds on a GPU, so
# Envoy (half EG's default 100m, and 256Mi instead of its 512Mi: a few routes, no TLS) and the external processor
# (half the 100m of the AI Gateway's examples/gateway-config/comprehensive.yaml, its 128Mi) ask little, and the
# gateway fits on the CPU node the stack runs anyway, with room for a rolling update's extra proxy. Two proxies: a node drain or spot interruption never leaves none. The
# controllers, rate limit service and Redis: one each (leader-elected, or only consulted per request).
GATEWAY = "gateway"
RATE_LIMITS = "rate_limits"  # planning/gateway.needs_rate_limits: a key has tokens_per_minute
SHUTDOWN_MANAGER = Requests(cpu_m=10, memory_mib=32)
EXTPROC_SIDECAR = Requests(cpu_m=50, memory_mib=128)
CPU_POOL.update({w.name: w for w in (
    PoolWorkload("envoy-gateway", cpu_m=50, memory_mib=256, when=GATEWAY),
    PoolWorkload("ai-gateway-controller", cpu_m=50, memory_mib=128, when=GATEWAY),
    PoolWorkload("envoy-proxy", cpu_m=50 + SHUTDOWN_MANAGER.cpu_m + EXTPROC_SIDECAR.cpu_m,
                 memory_mib=256 + SHUTDOWN_MANAGER.memory_mib + EXTPROC_SIDECAR.memory_mib, replicas=2, when=GATEWAY,
                 sidecars=(SHUTDOWN_MANAGER, EXTPROC_SIDECAR)),
    PoolWorkload("envoy-ratelimit", cpu_m=50, memory_mib=64, when=RATE_LIMITS),
    PoolWorkload("ratelimit-redis", cpu_m=50, memory_mib=64, when=RATE_LIMITS),
)})


# The AWS Load Balancer Controller (components/loadbalancer.py): two replicas (leader-elected; the second serves
# its webhooks and takes over at once when a spot node goes). Its chart requests nothing (values.yaml
# `resources: {}`); these are our ESTIMATE for a controller that watches Services, Endpoints and Pods of a small
# cluster and reconciles one NLB: mostly idle (CPU is a reservation, not a limit: it may burst), its memory the
# informer caches. Only with the gateway, whose Service
# is the one load balancer of the stack.
AWS_LOAD_BALANCER_CONTROLLER = PoolWorkload("aws-load-balancer-controller", cpu_m=25, memory_mib=128, replicas=2,
                                            when=GATEWAY)
AWS_LOAD_BALANCER_CONTROLLER_MEMORY_LIMIT_MIB = 512
CPU_POOL[AWS_LOAD_BALANCER_CONTROLLER.name] = AWS_LOAD_BALANCER_CONTROLLER


def cpu_pool_workloads(switches: dict[str, bool]) -> list[PoolWorkload]:
    """The CPU NodePool's pods with these config switches (monitoring, open_webui, aiperf)."""
    return [w for w in CPU_POOL.values() if w.enabled(switches)]


# The pre-cache Job of a model (components/precache.py): one pod per model, only until its cache is filled, then
# none. download-to-cache streams from NGC to EFS: network and disk bound, so one vCPU; 2 GiB leaves room for the
# NIM tooling (Python) and hashing. These sizes are our estimate (the NIM Operator's caching Job takes whatever its
# NIMCache asks, its samples ask nothing: k8s-nim-operator @ f63f74d7, config/samples). The memory limit stops a
# runaway download from starving its node's neighbours.
PRECACHE_JOB = PoolWorkload(name="nim-precache", cpu_m=1000, memory_mib=2048, arches=("amd64",))
PRECACHE_MEMORY_LIMIT_MIB = 4096
# Workloads that come and go (Jobs): the pool needs room for them while they run, not while the stack idles.
CPU_POOL_JOBS: dict[str, PoolWorkload] = {PRECACHE_JOB.name: PRECACHE_JOB}

# How fast a model's weights come from NGC into EFS: an ESTIMATE, no published figure. NGC publishes no download
# rate; the EFS side is not the limit (Elastic throughput, 1,500 MiB/s per client through the EFS CSI driver:
# docs.aws.amazon.com/efs/latest/ug/performance.html). 50 MiB/s (~420 Mbit/s) is deliberately low, as the timeouts
# built from it must not cut a slow but healthy download short.
PRECACHE_DOWNLOAD_MIB_S = 50
# A CPU node launch and the NIM image pull before the download starts, the same allowance a first GPU start gets
# (components/nim.py). NIM image sizes are not published; an uncached 9.5 GB image took ~6 minutes to pull on an EKS
# node (aws-ia/terraform-aws-eks-blueprints, patterns/ml-container-cache): an estimate.
PRECACHE_START_MINUTES = 20


def precache_download_minutes(cache_gib: float, rate_mib_s: float = PRECACHE_DOWNLOAD_MIB_S) -> float:
    """Estimated minutes to download a model's cache (the catalog's cache size, GiB) at `rate_mib_s`."""
    return cache_gib * 1024 / rate_mib_s / 60


def precache_timeout_minutes(cache_gib: float) -> int:
    """How long `pulumi up` waits for a model's pre-cache Job (and how long the Job may run): a CPU node and the
    image, then the download at the estimated rate."""
    return PRECACHE_START_MINUTES + math.ceil(precache_download_minutes(cache_gib))
