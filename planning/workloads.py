"""Facts about the workloads that more than one part of the program must agree on: NIM's uid (the NIM pods run as
it, the EFS access points of the model cache map every client to it) and the size of Open WebUI's data volume (the
component requests it, the cost estimate prices it), and what each workload on Karpenter's CPU NodePool requests
(CPU_POOL: the component's values and the cost estimate read the same entry). Plain data; scheduling facts live in
planning/scheduling.py."""

from __future__ import annotations

from dataclasses import dataclass

# NIM containers run as uid/gid 1000 (NVIDIA NIM for LLMs docs; FACTS.md); the EFS access points map clients to it.
NIM_UID = 1000
# Open WebUI's volume: accounts, chats, settings and its embedding model (gp3, GiB).
OPEN_WEBUI_DATA_GB = 10


@dataclass(frozen=True)
class PoolWorkload:
    """A workload on Karpenter's CPU NodePool: what its pods request (each), how many run, and the condition it runs
    under (None: always; else a StackConfig switch, or a condition named in planning/scaling.py). The component
    puts these very figures in its values; the cost estimate sizes the CPU pool from them."""

    name: str
    cpu_m: int
    memory_mib: int
    replicas: int = 1
    when: str | None = None


# KEDA 2.20.2: requests as the chart's defaults (keda values.yaml `resources.*`, also keda.sh/docs/2.20/operate/
# cluster); one replica each (the chart's default: the operator is leader-elected, its metrics server and webhooks
# serve the API server, which retries). The HTTP add-on 0.15.0: the interceptor proxies every request to a model at
# zero, so two replicas (a node drain or spot interruption never leaves none); the external scaler only answers KEDA
# (one: if it restarts, scaling waits a moment); no operator (only HTTPScaledObject needs it; components/scaling.py).
# The add-on's requests are below its chart defaults (250m each, 1.75 CPU for its default seven pods); its limits
# (components/scaling.py) leave room for bursts of traffic.
HTTP_ADD_ON = "http_add_on"  # the condition: planning/scaling.needs_interceptor (a model at zero, or monitoring off)
CPU_POOL: dict[str, PoolWorkload] = {w.name: w for w in (
    PoolWorkload("keda-operator", cpu_m=100, memory_mib=100),
    PoolWorkload("keda-operator-metrics-apiserver", cpu_m=100, memory_mib=100),
    PoolWorkload("keda-admission-webhooks", cpu_m=100, memory_mib=100),
    PoolWorkload("keda-add-ons-http-interceptor", cpu_m=100, memory_mib=64, replicas=2, when=HTTP_ADD_ON),
    PoolWorkload("keda-add-ons-http-external-scaler", cpu_m=50, memory_mib=32, when=HTTP_ADD_ON),
)}
