"""Facts about the workloads that more than one part of the program must agree on: NIM's uid (the NIM pods run as
it, the EFS access points of the model cache map every client to it), the size of Open WebUI's data volume (the
component requests it, the cost estimate prices it), and what each pod on Karpenter's CPU NodePool requests (the
components put it in their values, the cost estimate sizes the CPU nodes from it). Plain data; scheduling facts
live in planning/scheduling.py."""

from __future__ import annotations

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
    when: str | None = None  # a StackConfig switch: monitoring, open_webui, genai_perf
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
    # as before issue 13 (the HPAs' metrics); it goes when KEDA takes over scaling
    "prometheus-adapter": PoolWorkload("prometheus-adapter", 50, 128, when="monitoring"),
    # A chat server that loads its embedding model into memory; mostly idle between messages.
    "open-webui": PoolWorkload("open-webui", 250, 1024, when="open_webui"),
    # A benchmark client must not be short of CPU: its own delays would enter the latencies it measures. Its image
    # is amd64 only (planning/versions.py GENAI_PERF_ARCHES).
    "genai-perf": PoolWorkload("genai-perf", 1000, 2048, when="genai_perf", arches=("amd64",)),
}


def cpu_pool_workloads(switches: dict[str, bool]) -> list[PoolWorkload]:
    """The CPU NodePool's pods with these config switches (monitoring, open_webui, genai_perf)."""
    return [w for w in CPU_POOL.values() if w.enabled(switches)]
