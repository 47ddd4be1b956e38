"""Real Helm rendering of the plan's releases: `helm template` against the pinned charts in ../shared/charts.

A support library for tests/test_helm_render.py, not a test module. Pure helpers, no pytest: which helm to run,
the chart folder of a release, the values a release passes (with the values that are unknown under mocks replaced
by realistic strings), a render (cached on disk) -> manifests, and the schema gate for what a render produced.
`python -m tests.helm_render` prints the helm it would use (exit 1: none; the Makefile then installs .tools/helm).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHARTS = ROOT.parent / "shared" / "charts"
TOOL_HELM = ROOT / ".tools" / "helm"  # installed by `make .tools/helm` when PATH has no usable helm
CACHE = ROOT / ".cache" / "helm"
CACHE_DAYS = 30  # renders not used for this long are removed
MIN_HELM = (3, 8)
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"

# APIs every EKS cluster serves that helm's built-in capability list (client-go's scheme) lacks. Without them a
# chart that asks `.Capabilities.APIVersions.Has "apiregistration.k8s.io/v1"` (prometheus-adapter's APIServices)
# renders the v1beta1 fallback no cluster has served since 1.22; `pulumi up` installs against the real cluster.
CLUSTER_API_VERSIONS = ("apiregistration.k8s.io/v1",)

# What stands in for a value the engine only knows after deployment (mockrun shows it as "[unknown]").
UNKNOWN = "[unknown]"
SECRET = "[secret]"
ACCOUNT = "123456789012"


class HelmError(Exception):
    """`helm template` failed; the message is helm's own."""


@dataclass(frozen=True)
class Helm:
    path: str
    version: str  # as `helm version --short` prints it, e.g. v4.1.4+g05fa379


# ------------------------------------------------------------------------------------------------ helm binary


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(g) for g in match.groups()) if match else None  # type: ignore[return-value]


def usable(version: str) -> bool:
    parsed = parse_version(version)
    return parsed is not None and parsed[:2] >= MIN_HELM


def probe(path: str | os.PathLike) -> Helm | None:
    """The helm at `path` with its version, or None when it does not run."""
    try:
        out = subprocess.run([str(path), "version", "--short"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    version = out.stdout.strip()
    return Helm(str(path), version) if out.returncode == 0 and parse_version(version) else None


@lru_cache(maxsize=None)
def find_helm() -> Helm | None:
    """helm v3.8+ (or v4) from PATH, else the one `make .tools/helm` installed, else None."""
    for candidate in (shutil.which("helm"), TOOL_HELM if TOOL_HELM.is_file() else None):
        if candidate:
            found = probe(candidate)
            if found and usable(found.version):
                return found
    return None


# ----------------------------------------------------------------------------------------------- chart folders


@lru_cache(maxsize=None)
def chart_folders(charts: Path = CHARTS) -> dict[tuple[str, str], Path]:
    """(chart name, version) -> folder, from each folder's Chart.yaml."""
    found = {}
    for chart_yaml in sorted(charts.glob("*/Chart.yaml")) if charts.is_dir() else []:
        meta = yaml.safe_load(chart_yaml.read_text()) or {}
        found[(str(meta.get("name")), str(meta.get("version")))] = chart_yaml.parent
    return found


def chart_folder(chart: str, version: str, charts: Path = CHARTS) -> Path | None:
    folders = chart_folders(charts)
    bare = version.removeprefix("v")
    return folders.get((chart, version)) or folders.get((chart, bare)) or folders.get((chart, f"v{bare}"))


def missing_dependencies(folder: Path) -> list[str]:
    """The dependencies Chart.yaml declares that are not in charts/ (helm refuses to render without them)."""
    meta = yaml.safe_load((folder / "Chart.yaml").read_text()) or {}
    present = set()
    for sub in (folder / "charts").glob("*") if (folder / "charts").is_dir() else []:
        if (sub / "Chart.yaml").is_file():
            present.add((yaml.safe_load((sub / "Chart.yaml").read_text()) or {}).get("name"))
        elif sub.name.endswith(".tgz"):
            with tarfile.open(sub) as tar:
                for member in tar.getmembers():
                    if member.name.count("/") == 1 and member.name.endswith("/Chart.yaml"):
                        present.add((yaml.safe_load(tar.extractfile(member).read()) or {}).get("name"))
    return [d["name"] for d in meta.get("dependencies") or [] if d["name"] not in present]


def dependency_conditions(folder: Path) -> dict[str, str]:
    """Sub-chart name -> the values path that switches it on (its `condition` in Chart.yaml)."""
    meta = yaml.safe_load((folder / "Chart.yaml").read_text()) or {}
    return {d["name"]: d.get("condition", "") for d in meta.get("dependencies") or []}


def switched_off(values: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """A copy of `values` with each dotted path set to false."""
    out = json.loads(json.dumps(values))
    for path in paths:
        *parents, leaf = path.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = False
    return out


def without_missing_dependencies(folder: Path, cache: Path = CACHE) -> tuple[Path, list[str]]:
    """The chart as helm can render it when sub-charts its Chart.yaml declares are absent: a copy whose Chart.yaml
    (and Chart.lock) leaves them out, so the chart's own templates render when the absent ones are switched off
    (`dependency_conditions`); the absent ones are returned by name. The folder itself when nothing is missing."""
    missing = missing_dependencies(folder)
    if not missing:
        return folder, []
    copy_dir = cache / "charts" / f"{folder.name}-{folder_digest(folder.resolve())[:16]}"
    if not (copy_dir / "Chart.yaml").is_file():
        copy_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}-", dir=copy_dir.parent))  # same file system
        target = staging / folder.name
        shutil.copytree(folder, target, copy_function=shutil.copyfile)  # writable copies of a read-only folder
        for sub in [target, *(p for p in target.rglob("*") if p.is_dir())]:
            os.chmod(sub, 0o755)
        for name in ("Chart.yaml", "Chart.lock"):
            path = target / name
            if path.is_file():
                meta = yaml.safe_load(path.read_text()) or {}
                meta["dependencies"] = [d for d in meta.get("dependencies") or [] if d.get("name") not in missing]
                path.write_text(yaml.safe_dump(meta, sort_keys=False))
        try:
            os.replace(target, copy_dir)  # atomic: a parallel worker may have made it already
        except OSError:
            pass
        shutil.rmtree(staging, ignore_errors=True)
    return copy_dir, missing


@lru_cache(maxsize=None)
def folder_digest(folder: Path) -> str:
    """Content hash of a chart folder: a changed chart never reuses an old render."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# -------------------------------------------------------------------------------------------------- values


def realistic(values: Any, path: str = "", key: str = "") -> tuple[Any, list[str]]:
    """`values` with every mock-only placeholder ("[unknown]", a masked "[secret]") replaced by a realistic string
    chosen from its key; returns (values, the key paths replaced)."""
    if isinstance(values, dict):
        out, replaced = {}, []
        for k, value in values.items():
            out[k], sub = realistic(value, f"{path}.{k}" if path else str(k), str(k))
            replaced += sub
        return out, replaced
    if isinstance(values, list):
        out_list, replaced = [], []
        for i, value in enumerate(values):
            item, sub = realistic(value, f"{path}[{i}]", key)
            out_list.append(item)
            replaced += sub
        return out_list, replaced
    if values in (UNKNOWN, SECRET):
        return _stand_in(key), [path]
    return values, []


def _stand_in(key: str) -> str:
    lower = key.lower()
    slug = re.sub(r"[^a-z0-9]+", "-", lower).strip("-") or "value"
    if lower.endswith("arn"):
        return f"arn:aws:iam::{ACCOUNT}:role/placeholder-{slug}"
    if any(w in lower for w in ("url", "endpoint", "host")):
        return f"https://placeholder-{slug}.example.com"
    return f"placeholder-{slug}"


def release_values(release: Any) -> tuple[dict[str, Any], list[str], list[str]]:
    """(values to render with, key paths replaced by stand-ins, secret strings to keep out of any message).

    The values are the release's `values` input with secrets unwrapped (`Resource.revealed`), as the engine hands
    them to helm.
    """
    masked = release.inputs.get("values") or {}
    revealed = (release.revealed or {}).get("values", masked) or {}
    values, replaced = realistic(revealed)
    return values, replaced, sorted(set(_secret_strings(masked, revealed)), key=len, reverse=True)


def _secret_strings(masked: Any, revealed: Any) -> list[str]:
    if masked == SECRET:
        return [s for s in _leaves(revealed) if isinstance(s, str) and s and s != SECRET]
    if isinstance(masked, dict) and isinstance(revealed, dict):
        return [s for k in masked if k in revealed for s in _secret_strings(masked[k], revealed[k])]
    if isinstance(masked, list) and isinstance(revealed, list):
        return [s for m, r in zip(masked, revealed) for s in _secret_strings(m, r)]
    return []


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, SECRET)
    return text


# -------------------------------------------------------------------------------------------------- render


class _Loader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """YAML 1.1 reads a bare `=` (an enum value in Prometheus' CRDs) as the `value` tag: keep it a string."""


_Loader.add_constructor("tag:yaml.org,2002:value", yaml.constructor.SafeConstructor.construct_yaml_str)


def render(helm: Helm, folder: Path, *, name: str, namespace: str, values: dict[str, Any], kube_version: str,
           include_crds: bool = True, api_versions: tuple[str, ...] = CLUSTER_API_VERSIONS,
           cache: Path | None = CACHE) -> list[Any]:
    """The manifests `helm template` renders for a release (hooks included, test hooks not, as an install creates
    them). Cached under `cache` by everything the output depends on; pass cache=None to keep nothing on disk."""
    key_material = {
        "chart": str(folder.resolve()), "chart_digest": folder_digest(folder.resolve()), "values": values,
        "name": name, "namespace": namespace, "kube_version": kube_version, "helm": helm.version,
        "include_crds": include_crds, "api_versions": list(api_versions),
    }
    key = hashlib.sha256(json.dumps(key_material, sort_keys=True).encode()).hexdigest()
    entry = cache / f"{key}.json" if cache is not None else None
    if entry is not None and entry.is_file():
        try:
            manifests = json.loads(entry.read_text())["manifests"]
            os.utime(entry)
            return manifests
        except (ValueError, KeyError, OSError):
            pass  # a damaged entry: render again

    with tempfile.TemporaryDirectory(prefix="helm-render-") as tmp:
        values_file = Path(tmp) / "values.json"
        values_file.write_text(json.dumps(values))
        cmd = [helm.path, "template", name, str(folder), "--namespace", namespace, "--values", str(values_file),
               "--kube-version", kube_version, "--skip-tests"]
        cmd += ["--include-crds"] if include_crds else []
        for api in api_versions:
            cmd += ["--api-versions", api]
        env = {**os.environ, **{f"HELM_{d}_HOME": str(Path(tmp) / d.lower()) for d in ("CACHE", "CONFIG", "DATA")}}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        raise HelmError(f"helm template {name} {folder.name} failed: {out.stderr.strip() or out.stdout.strip()}")
    manifests = [doc for doc in yaml.load_all(out.stdout, Loader=_Loader) if doc is not None]

    if entry is not None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp_entry = entry.with_suffix(f".{os.getpid()}.tmp")
        tmp_entry.write_text(json.dumps({"chart": folder.name, "release": name, "helm": helm.version,
                                         "manifests": manifests}))
        os.replace(tmp_entry, entry)  # atomic: parallel test workers never read half a file
        _prune(entry.parent)
    return manifests


def _prune(cache: Path) -> None:
    cutoff = time.time() - CACHE_DAYS * 86400
    for old in cache.glob("*.json"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------------- gate


def check(manifests: list[Any], kube_version: str) -> tuple[list[str], set[str]]:
    """(problems, unchecked kinds): built-in kinds against the Kubernetes schema of `kube_version`, custom resources
    against their CRD in ../shared/reference; "apiVersion Kind" of custom resources that have no CRD there."""
    from tests import conformance  # the gates our own objects go through

    problems: list[str] = []
    unchecked: set[str] = set()
    for m in manifests:
        if not isinstance(m, dict) or not m.get("apiVersion") or not m.get("kind"):
            problems.append(f"not a Kubernetes object: {str(m)[:200]}")
            continue
        if not isinstance(m.get("metadata"), dict):
            problems.append(f"{m['kind']}: no metadata")
            continue
        if conformance.is_builtin(m):
            problems += conformance.validate_kubernetes(m, kube_version)
        elif (m["apiVersion"], m["kind"]) in conformance.crd_schemas():
            problems += conformance.validate_custom_resource(m)
        else:
            unchecked.add(f"{m['apiVersion']} {m['kind']}")
    return problems, unchecked


def main() -> int:
    helm = find_helm()
    if helm is None:
        print(f"no helm {MIN_HELM[0]}.{MIN_HELM[1]}+ on PATH or at {TOOL_HELM}", file=sys.stderr)
        return 1
    print(f"{helm.path} {helm.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
