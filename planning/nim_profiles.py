"""Which profiles of a NIM image's model manifest a model's GPU types will run, chosen without a GPU, and the
pre-cache Job's program that downloads them into the model's cache.

This one file runs in two places: the tests import it, and components/precache.py ships it verbatim as the program
of the pre-cache Job's container (`python3 -c`), inside the NIM image, where the manifest is. So it imports only the
standard library (PyYAML when it reads a manifest, which NIM's own manifest reader needs as well) and nothing of
this project; tests/test_precache.py checks that its GPU types are planning/gpus.py's.

Where the facts come from:
- The manifest, `/opt/nim/etc/default/model_manifest.yaml` (`/etc/nim/config/model_manifest.yaml` in NIM 1.0-1.1),
  is how the NIM Operator lists profiles without a GPU: it prints whichever of the two exists in a throw-away pod
  (NVIDIA/k8s-nim-operator @ f63f74d7, internal/controller/nimcache_controller.go). Two shapes exist: v1, a map of
  profile id -> {model, release, tags, container_url, workspace} whose workspace carries YAML tags (`!workspace`,
  `!name`); v2, `{schema_version, profiles: [{id, tags, workspace}]}` (internal/nimparser/v1 and v2, testdata).
- Tags: `gpu` (A100, A10G, L40S, H100 in real manifests: the NIMCache status in the operator's docs, NIM 1.2.1's
  startup log of llama-3.1-70b on A100, operator testdata), `gpu_device` (PCI id, e.g. `20b2:10de`), `llm_engine`
  (or `backend` in older ones), `precision`, `tp`, `pp`, `profile` (throughput / latency), `feat_lora`.
- NIM's automatic selection (docs.nvidia.com/nim/large-language-models, profiles.html "Automatic Profile
  Selection"): only profiles runnable on the number and type of GPUs present; hardware-specific profiles (with a
  `gpu` tag) before generic ones (none: vLLM, SGLang, TRT-LLM buildable); TensorRT-LLM before vLLM; lower
  precision first. Profiles for fewer GPUs than present are runnable too (the docs' example on one system lists
  tensorrt_llm-A100-fp16-tp2-latency, -tp1-throughput, vllm-fp16-tp2, vllm-fp16-tp1, in that order), so more GPUs
  used ranks first. Without LoRA, NIM only looks at profiles without it ("Running NIM without LoRA. Only looking
  for compatible profiles that do not support LoRA.", NIM 1.2.1 log).
- `download-to-cache --profiles <ids>` downloads the given profiles into NIM_CACHE_PATH without requesting a GPU: the
  NIM Operator's caching Job runs exactly that for every NGC NIM it caches, NIM 1.0 images included
  (nimcache_controller.go; its caching guide caches llama3-8b-instruct:1.0.0). The operator's Job lands on GPU nodes
  by default, though (its default node selector), so that it works on a node without any GPU is not shown by a
  source: when it does not (or anything else here fails), `main` says so and succeeds, and the model downloads on
  its first start instead. One id per call here, so each completed profile gets its marker.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_PATHS = ("/opt/nim/etc/default/model_manifest.yaml", "/etc/nim/config/model_manifest.yaml")
# Inside the cache, a marker per profile the Job downloaded completely; a re-run skips those.
MARKER_DIR = ".nim-on-eks/precached"

# Our GPU types (planning/gpus.py) -> the `gpu` tag of NIM's hardware-specific profiles for them. A100, A10G, L40S
# and H100 are seen in real manifests (above); T4, L4 and H200 follow NVIDIA's GPU names in the NIM support matrix,
# unconfirmed in a manifest: if a manifest spells one otherwise, that GPU gets the generic profile here.
GPU_TAGS = {
    "t4": "T4",
    "a10g": "A10G",
    "l4": "L4",
    "l40s": "L40S",
    "a100": "A100",
    "a100-80gb": "A100",
    "h100": "H100",
    "h200": "H200",
}
# A100 profiles of both memory sizes say `gpu: A100`; their `gpu_device` tells them apart (PCI ids, pciutils/pciids
# @ c1c12547 pci.ids: 20b0 A100 SXM4 40GB, 20f1 A100 PCIe 40GB, 20b2 A100 SXM4 80GB, 20b5 A100 PCIe 80GB; p4d
# carries the SXM4 40GB, p4de the SXM4 80GB). A profile built for one size is not used for the other.
OTHER_SIZE_DEVICES = {"a100": {"20b2", "20b5"}, "a100-80gb": {"20b0", "20f1"}}


class ManifestError(ValueError):
    """The manifest is missing, unreadable or of an unknown shape."""


class NoProfile(ValueError):
    """Some allowed GPU type has no profile it can run; the message says what the manifest offers."""


@dataclass(frozen=True)
class Profile:
    id: str
    tags: dict[str, str]

    @property
    def gpu(self) -> str:
        return self.tags.get("gpu", "")

    @property
    def engine(self) -> str:
        return self.tags.get("llm_engine") or self.tags.get("backend") or ""

    @property
    def gpus(self) -> int:
        """GPUs the profile runs on: tensor x pipeline parallel."""
        return _count(self.tags.get("tp")) * _count(self.tags.get("pp"))

    @property
    def lora(self) -> bool:
        return self.tags.get("feat_lora", "false").lower() == "true"

    @property
    def precision_bits(self) -> int:
        found = re.search(r"\d+", self.tags.get("precision", ""))
        return int(found.group()) if found else 16

    def describe(self) -> str:
        parts = [self.engine or "?", self.gpu or "any GPU", self.tags.get("precision", ""),
                 f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}", self.tags.get("profile", "")]
        return " ".join(p for p in parts if p) + (" LoRA" if self.lora else "")


def _count(raw: str | None) -> int:
    try:
        return max(1, int(raw)) if raw else 1
    except ValueError:
        return 1


def _tag_value(value: Any) -> str:
    # unquoted YAML booleans and numbers (`feat_lora: false`, `tp: 8`) read as the strings quoted ones are
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_manifest(data: Any) -> list[Profile]:
    """The profiles of a parsed manifest, v1 (a map of id -> profile) or v2 (`profiles: [{id, tags}]`)."""
    if isinstance(data, dict) and isinstance(data.get("profiles"), list):
        items = [(p.get("id"), p.get("tags")) for p in data["profiles"] if isinstance(p, dict)]
    elif isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        items = [(pid, p.get("tags")) for pid, p in data.items()]
    else:
        raise ManifestError("the model manifest is neither a map of profile ids (v1) nor has a `profiles` list (v2)")
    profiles = [Profile(str(pid), {str(k): _tag_value(v) for k, v in (tags or {}).items()})
                for pid, tags in items if pid]
    if not profiles:
        raise ManifestError("the model manifest lists no profile")
    return profiles


def load_manifest(text: str) -> list[Profile]:
    """Parse manifest YAML; NIM's own YAML tags (`!workspace`, `!name`) are read as the plain values below them."""
    import yaml

    class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        pass

    def plain(loader: Any, _suffix: str, node: Any) -> Any:
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    Loader.add_multi_constructor("!", plain)
    try:
        return parse_manifest(yaml.load(text, Loader=Loader))
    except yaml.YAMLError as err:
        raise ManifestError(f"the model manifest is not valid YAML: {err}") from None


def made_for(profile: Profile, gpu_type: str) -> bool:
    """A hardware-specific profile built for this GPU type."""
    if profile.gpu.upper() != GPU_TAGS[gpu_type]:
        return False
    device = profile.tags.get("gpu_device", "").split(":", 1)[0].lower()
    return device not in OTHER_SIZE_DEVICES.get(gpu_type, set())


def _rank(profile: Profile, specific: bool) -> tuple[bool, bool, int, int]:
    # NIM's documented order (module docstring); what it leaves open (latency or throughput at the same GPU count
    # and precision) ties, and every tied profile is cached, so NIM finds whichever it prefers.
    return specific, "tensorrt" in profile.engine.lower(), -profile.precision_bits, profile.gpus


def select_profiles(profiles: list[Profile], gpu_types: list[str] | tuple[str, ...], gpus: int,
                    lora: bool = False) -> dict[str, list[str]]:
    """For each GPU type, the profiles NIM would choose on a node with `gpus` of them (ids, sorted).

    Runnable: no more than `gpus` GPUs, LoRA as asked, and either made for that GPU type or generic (no `gpu` tag).
    Raises NoProfile naming every GPU type without one and what the manifest has.
    """
    unknown = [t for t in gpu_types if t not in GPU_TAGS]
    if unknown:
        raise ValueError(f"unknown GPU types {unknown}; known: {', '.join(GPU_TAGS)}")
    chosen: dict[str, list[str]] = {}
    missing: list[str] = []
    for gpu_type in gpu_types:
        ranked = []
        for p in profiles:
            if p.lora != lora or p.gpus > gpus:
                continue
            if made_for(p, gpu_type):
                ranked.append((_rank(p, True), p.id))
            elif not p.gpu:
                ranked.append((_rank(p, False), p.id))
        if not ranked:
            missing.append(gpu_type)
            continue
        best = max(rank for rank, _ in ranked)
        chosen[gpu_type] = sorted(pid for rank, pid in ranked if rank == best)
    if missing:
        offered = sorted({p.describe() for p in profiles})
        raise NoProfile(
            f"no profile of this NIM image runs on {', '.join(missing)} with {gpus} GPU{'s' if gpus != 1 else ''}"
            f"{' with LoRA' if lora else ' without LoRA'}; its manifest has: {'; '.join(offered)}. Set the model's "
            "gpus to a count a profile uses, allow other gpu_instance_families, pin a profile with "
            "env NIM_MODEL_PROFILE, or set precache to false (the first replica then downloads on its GPU node)")
    return chosen


def wanted_profiles(selection: dict[str, list[str]]) -> list[str]:
    """Every profile to cache, once, in order."""
    return sorted({pid for ids in selection.values() for pid in ids})


def marker_name(profile: str) -> str:
    """A file name for a profile id or name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", profile)


def precache(cache: Path, profiles: list[str], download: Any = None, log: Any = print) -> list[str]:
    """Download each profile not yet marked complete in `cache`, marking each once `download` returns; the profiles
    downloaded. `download(profile)` raises on failure (no marker is written then)."""
    download = download or _download
    markers = cache / MARKER_DIR
    markers.mkdir(parents=True, exist_ok=True)
    done = []
    for profile in profiles:
        marker = markers / marker_name(profile)
        if marker.exists():
            log(f"profile {profile}: already in the cache, skipped")
            continue
        log(f"profile {profile}: downloading")
        download(profile)
        marker.write_text(json.dumps({"profile": profile}) + "\n")
        done.append(profile)
        log(f"profile {profile}: done")
    return done


def _download(profile: str, timeout_s: float | None = None) -> None:
    try:
        subprocess.run(["download-to-cache", "--profiles", profile], check=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"download-to-cache --profiles {profile} did not finish within the Job's download time "
                         f"({timeout_s:.0f} s left; NGC slower than estimated)") from None
    except FileNotFoundError:
        raise SystemExit("download-to-cache is not in this image: it cannot pre-cache; set precache to false for "
                         "this model") from None
    except subprocess.CalledProcessError as err:
        raise SystemExit(f"download-to-cache --profiles {profile} failed (exit {err.returncode}); its output is "
                         "above") from None


FALLBACK = ("PRE-CACHE SKIPPED: {reason}. Profiles not marked complete in the cache are downloaded by the model on its "
            "first start, on its GPU node, as a model without pre-caching does.")


def main(env: dict[str, str] | None = None) -> int:
    """Pre-cache, or say why not and succeed anyway: a pre-cache that cannot run (no GPU-less download in this image,
    no manifest, no profile for a GPU type, a failed download) must not fail `pulumi up`, whose StatefulSet waits for
    this Job; the first start then downloads, as before pre-caching existed (issue 13: fall back, and say so)."""
    try:
        return _main(dict(os.environ if env is None else env))
    except SystemExit as err:
        if err.code in (None, 0):
            raise
        print(FALLBACK.format(reason=err.code), flush=True)
    except Exception as err:  # noqa: BLE001 - an unforeseen failure (no PyYAML, an odd manifest) falls back too
        traceback.print_exc()
        print(FALLBACK.format(reason=f"{type(err).__name__}: {err}"), flush=True)
    return 0


def _main(env: dict[str, str]) -> int:
    cache = Path(env["NIM_CACHE_PATH"])
    # The Job's time for downloading (its deadline less the node's and image's start allowance): a download that
    # would outlast it stops and falls back, instead of the Job failing at its deadline and with it `pulumi up`.
    budget = float(env["NIM_ON_EKS_DOWNLOAD_SECONDS"]) if env.get("NIM_ON_EKS_DOWNLOAD_SECONDS") else None
    ends = time.monotonic() + budget if budget is not None else None

    def download(profile: str) -> None:
        left = None if ends is None else ends - time.monotonic()
        if left is not None and left <= 0:
            raise SystemExit(f"no download time left for {profile}")
        _download(profile, left)

    pinned = env.get("NIM_MODEL_PROFILE", "").strip()
    if pinned:
        print(f"NIM_MODEL_PROFILE is pinned: caching {pinned}")
        wanted = [pinned]
    else:
        path = next((Path(p) for p in MANIFEST_PATHS if Path(p).is_file()), None)
        if path is None:
            raise SystemExit(f"no model manifest at {' or '.join(MANIFEST_PATHS)}: this image cannot be pre-cached "
                             "by profile; set precache to false for this model")
        gpu_types = json.loads(env["NIM_ON_EKS_GPU_TYPES"])
        gpus = int(env["NIM_ON_EKS_GPUS"])
        try:
            selection = select_profiles(load_manifest(path.read_text()), gpu_types, gpus,
                                        lora=env.get("NIM_ON_EKS_LORA") == "true")
        except (ManifestError, NoProfile) as err:
            raise SystemExit(f"{path}: {err}") from None
        for gpu_type, ids in selection.items():
            print(f"{gpu_type} x {gpus}: {', '.join(ids)}")
        wanted = wanted_profiles(selection)
    precache(cache, wanted, download)
    return 0


if __name__ == "__main__":
    sys.exit(main())
