"""Every chart, image, add-on and AMI alias is pinned, in one visible place (planning/versions.py, models.yaml)."""

from __future__ import annotations

import json
import re

import pytest

from planning import versions
from planning.catalog import load_catalog
from tests.conftest import THREE_MODELS, plan_for, problems

PINNED_CHARTS = {(c.name, c.version) for c in vars(versions).values() if isinstance(c, versions.ChartPin)}
PINNED_IMAGES = {v for k, v in vars(versions).items() if k.endswith("_IMAGE")} | {
    f"{m.image}:{m.tag}" for m in load_catalog().models.values()}


def images(plan) -> list[str]:
    found = []
    for r in plan.resources:
        spec = r.inputs.get("spec", {})
        pod = spec.get("template", {}).get("spec", {}) if isinstance(spec, dict) else {}
        found += [c["image"] for c in pod.get("containers", []) + pod.get("initContainers", [])]
    return found


def test_every_image_is_pinned_in_one_place():
    plan = plan_for(*THREE_MODELS, "aiperf=true")
    found = images(plan)
    # three models and their pre-cache Jobs, Open WebUI (and its static-files init container), AIPerf (and its install)
    assert len(found) == 10
    for image in found:
        assert re.fullmatch(r"[^:]+:[A-Za-z0-9_][A-Za-z0-9_.-]*", image), image
        assert not image.endswith((":latest", ":main")), image
        assert image in PINNED_IMAGES, f"{image} is not pinned in planning/versions.py or models.yaml"


def test_every_chart_is_pinned_in_one_place(dev_plan):
    releases = dev_plan.of_type("kubernetes:helm.sh/v3:Release")
    # Karpenter, device plugin, kube-prometheus-stack, DCGM exporter, KEDA, HTTP add-on, Envoy Gateway, the AI
    # Gateway's CRDs and controller, AWS Load Balancer Controller
    assert len(releases) == 10
    for r in releases:
        chart = r.inputs["chart"].rsplit("/", 1)[-1]
        assert (chart, r.inputs["version"]) in PINNED_CHARTS, r.inputs


def test_add_ons_and_ami_alias_come_from_versions(dev_plan):
    for addon in dev_plan.of_type("aws:eks/addon:Addon"):
        if addon.implied:
            continue  # pulumi-eks's own (vpc-cni, kube-proxy): pinned by the pulumi-eks version
        name = addon.inputs["addonName"]
        assert name in versions.ADDON_VERSIONS
        assert addon.inputs.get("addonVersion") == versions.ADDON_VERSIONS[name]
    for node_class in dev_plan.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"):
        assert node_class.inputs["spec"]["amiSelectorTerms"] == [{"alias": versions.GPU_AMI_ALIAS}]
    assert dev_plan.one("eks:index:Cluster").inputs["version"] == versions.DEFAULT_EKS_VERSION


DIGEST = "sha256:" + "ab" * 32


def test_a_user_may_pull_any_image_by_digest():
    """image_digests: the tag stays, the digest is added where the program renders the image (issue 14)."""
    from planning import versions
    nim = "nvcr.io/nim/meta/llama3-8b-instruct:1.0.3"
    digests = {versions.OPEN_WEBUI_IMAGE: DIGEST, nim: DIGEST.replace("ab", "cd")}
    plan = plan_for(f"image_digests={json.dumps(digests)}")
    assert plan.error is None, plan.error
    found = images(plan)
    assert found.count(f"{versions.OPEN_WEBUI_IMAGE}@{DIGEST}") == 2  # the server and its init container
    assert found.count(f"{nim}@{digests[nim]}") == 2  # the server and its pre-cache Job
    assert not [i for i in found if "@" not in i]


@pytest.mark.parametrize("value, expected", [
    ('{"ghcr.io/open-webui/open-webui:v0.6.43": "sha256:abc"}', "sha256:<64 lowercase hex digits>"),
    ('{"ghcr.io/open-webui/open-webui:v0.6.43": "sha512:' + "ab" * 64 + '"}', "sha256:<64 lowercase hex digits>"),
    ('["sha256:x"]', "a JSON map from image to digest"),
    ('{"docker.io/library/busybox:1.36": "' + DIGEST + '"}', "docker.io/library/busybox:1.36 is no image of this stack"),
])
def test_bad_image_digests_name_the_key(value, expected):
    found = problems(image_digests=value)
    assert any(p.startswith("image_digests: ") and expected in p for p in found), found
