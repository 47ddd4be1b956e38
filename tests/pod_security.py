"""A checker of pod specs against the Pod Security Standards (kubernetes.io/docs/concepts/security/
pod-security-standards), as Pod Security Admission applies them to a namespace's `enforce` level.

A support library for tests/test_pod_security.py, not a test module. `violations(level, pod_spec)` lists what a pod
does that the level forbids (empty: admitted). Written from the Standards' tables; the controls a pod of this program
could plausibly break are all here (host namespaces and ports, privileged, capabilities, hostPath and the restricted
volume types, seccomp, AppArmor, SELinux, /proc mount, sysctls, privilege escalation, non-root, root uid).
"""

from __future__ import annotations

from typing import Any

# Baseline: capabilities a container may add.
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                         "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# Restricted: the only volume types allowed.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                      "secret"}
LEVELS = ("privileged", "baseline", "restricted")


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or []),
            *(pod.get("ephemeralContainers") or [])]


def baseline(pod: dict[str, Any]) -> list[str]:
    found = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(f"{key}: true")
    psc = pod.get("securityContext") or {}
    if (psc.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append("pod seccompProfile Unconfined")
    if (psc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        found.append("pod appArmorProfile Unconfined")
    if (psc.get("seLinuxOptions") or {}).get("type", "") not in SELINUX_TYPES:
        found.append("pod seLinuxOptions.type")
    if any(k in (psc.get("seLinuxOptions") or {}) for k in ("user", "role")):
        found.append("pod seLinuxOptions user/role")
    for s in psc.get("sysctls") or []:
        if s["name"] not in SAFE_SYSCTLS:
            found.append(f"sysctl {s['name']}")
    for v in pod.get("volumes") or []:
        if "hostPath" in v:
            found.append(f"hostPath volume {v['name']}")
    for c in _containers(pod):
        sc, n = c.get("securityContext") or {}, c["name"]
        if sc.get("privileged"):
            found.append(f"{n}: privileged")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"{n}: hostProcess")
        added = set((sc.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES
        if added:
            found.append(f"{n}: adds capabilities {sorted(added)}")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            found.append(f"{n}: hostPort")
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            found.append(f"{n}: seccompProfile Unconfined")
        if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
            found.append(f"{n}: appArmorProfile Unconfined")
        if (sc.get("seLinuxOptions") or {}).get("type", "") not in SELINUX_TYPES:
            found.append(f"{n}: seLinuxOptions.type")
        if sc.get("procMount", "Default") != "Default":
            found.append(f"{n}: procMount {sc['procMount']}")
    return found


def restricted(pod: dict[str, Any]) -> list[str]:
    found = baseline(pod)
    for v in pod.get("volumes") or []:
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {v['name']} of type {sorted(kinds)}")
    psc = pod.get("securityContext") or {}
    if psc.get("runAsUser") == 0:
        found.append("pod runAsUser 0")
    for c in _containers(pod):
        sc, n = c.get("securityContext") or {}, c["name"]
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{n}: allowPrivilegeEscalation not false")
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            found.append(f"{n}: runAsNonRoot not true")
        if sc.get("runAsUser") == 0:
            found.append(f"{n}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{n}: seccompProfile {seccomp}")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"{n}: does not drop ALL capabilities")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{n}: adds capabilities beyond NET_BIND_SERVICE")
    return found


def violations(level: str, pod: dict[str, Any]) -> list[str]:
    """What `pod` (a pod spec) does that Pod Security `level` forbids."""
    if level == "privileged":
        return []
    if level == "baseline":
        return baseline(pod)
    if level == "restricted":
        return restricted(pod)
    raise ValueError(f"unknown level {level!r}")
