"""image_digests for the images the pinned charts run (issue 14): the chart's own values key pulls the image as pinned
by the digest given, proven by real `helm template` renders; an image whose chart takes no digest is refused."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from parts.helm import merged
from planning import versions
from planning.security import CHART_IMAGE_DIGESTS, DigestKey, NoDigestKey, chart_digest_values
from tests import conformance, helm_render
from tests.conftest import needs_charts, render_release, plan_for, problems

OWN_IMAGES = {versions.OPEN_WEBUI_IMAGE, versions.AIPERF_IMAGE, versions.REDIS_IMAGE}
# In IMAGE_ARCHES for the placement checks, but no release of any plan installs its chart.
NOT_INSTALLED = {"registry.k8s.io/prometheus-adapter/prometheus-adapter:v0.12.0"}
# Sub-charts of kube-prometheus-stack whose values.yaml is not in ../shared/reference (nor the sub-chart in
# ../shared/charts, so no render here): the keys were checked by hand at the sub-charts' tags (planning/security.py).
CHECKED_BY_HAND = {"kube-state-metrics.image.sha", "prometheus-node-exporter.image.digest"}
DIGESTABLE = {image: where for image, where in CHART_IMAGE_DIGESTS.items() if isinstance(where, DigestKey)}


def digest_of(image: str) -> str:
    """A distinct, well-formed digest per image, so a render that swaps two of them is caught."""
    return "sha256:" + (re.sub(r"[^0-9a-f]", "", image.encode().hex()) * 4)[:64]


ALL_DIGESTS = {image: digest_of(image) for image in DIGESTABLE}
AT_ZERO = '[{"name": "meta/llama3-8b-instruct", "min_replicas": 0}]'


def test_every_chart_image_says_where_its_digest_goes():
    """Each image the charts run (IMAGE_ARCHES, as the charts render them) has a digest key or a recorded reason."""
    chart_images = set(versions.IMAGE_ARCHES) - OWN_IMAGES - NOT_INSTALLED
    assert set(CHART_IMAGE_DIGESTS) == chart_images
    pinned = {c.name for c in vars(versions).values() if isinstance(c, versions.ChartPin)}
    assert {w.chart for w in CHART_IMAGE_DIGESTS.values()} <= pinned


def _image_keys(values: Any, path: str = "") -> list[str]:
    """Key paths under an `image`-like map that could carry a digest (`digest`, `sha`)."""
    found = []
    for k, v in values.items() if isinstance(values, dict) else ():
        here = f"{path}.{k}" if path else str(k)
        if k in ("digest", "sha") and "image" in path.lower():
            found.append(here)
        found += _image_keys(v, here)
    return found


@pytest.mark.parametrize("chart, folder", [
    (versions.NVIDIA_DEVICE_PLUGIN.name, "nvidia-device-plugin-0.20.0"), (versions.KEDA.name, "keda-2.20.2"),
    (versions.KEDA_HTTP_ADD_ON.name, "keda-add-ons-http-0.15.0"), (versions.DCGM_EXPORTER.name, "dcgm-exporter-4.8.2"),
])
def test_charts_without_a_digest_key_have_none(chart, folder):
    """A chart recorded as taking no digest really has no digest or sha key for an image; a chart update that adds
    one fails here until planning/security.py records it."""
    values = yaml.safe_load((helm_render.CHARTS / folder / "values.yaml").read_text())
    assert _image_keys(values) == []
    assert any(isinstance(w, NoDigestKey) and w.chart == chart for w in CHART_IMAGE_DIGESTS.values())


def test_no_digests_change_no_values():
    assert all(chart_digest_values(c.name, {}) == {} for c in vars(versions).values()
               if isinstance(c, versions.ChartPin))
    assert merged({"a": {"b": 1}}, {}) == {"a": {"b": 1}}
    assert merged({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


def test_digest_values_take_each_charts_form():
    kps = chart_digest_values(versions.KUBE_PROMETHEUS_STACK.name, ALL_DIGESTS)
    prometheus = "quay.io/prometheus/prometheus:v3.14.0-distroless"
    # kube-prometheus-stack and grafana write `@sha256:` themselves; kube-state-metrics and node-exporter do not
    assert kps["prometheus"]["prometheusSpec"]["image"]["sha"] == ALL_DIGESTS[prometheus].removeprefix("sha256:")
    ksm = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0"
    assert kps["kube-state-metrics"]["image"]["sha"] == ALL_DIGESTS[ksm]
    karpenter = chart_digest_values(versions.KARPENTER.name, ALL_DIGESTS)
    assert karpenter == {"controller": {"image": {"digest": ALL_DIGESTS["public.ecr.aws/karpenter/controller:1.14.1"]}}}


# ------------------------------------------------------------------------------------------------ the config


@pytest.mark.parametrize("image", sorted(i for i, w in CHART_IMAGE_DIGESTS.items() if isinstance(w, NoDigestKey)))
def test_an_image_whose_chart_takes_no_digest_is_refused(image):
    """Named: the key, the image and digest given, and what is allowed."""
    digest = digest_of(image)
    # a model at zero is reached through the HTTP add-on's interceptor: every chart is installed
    found = problems(image_digests=json.dumps({image: digest}), nim_models=AT_ZERO)
    wanted = [p for p in found if p.startswith(f"image_digests: {image}: {digest} cannot be used")]
    assert wanted, found
    assert "has no values key for a digest" in wanted[0] and "allowed: " in wanted[0]
    assert "quay.io/prometheus/prometheus:v3.14.0-distroless" in wanted[0].split("allowed: ")[1]


def test_a_chart_image_of_a_chart_not_installed_is_no_image_of_the_stack():
    image = "quay.io/prometheus/prometheus:v3.14.0-distroless"
    found = problems(image_digests=json.dumps({image: ALL_DIGESTS[image]}), monitoring="false")
    assert any(p.startswith(f"image_digests: {image} is no image of this stack") for p in found), found


# ------------------------------------------------------------------------------------------ real helm renders


def digest_plan():
    plan = plan_for(f"image_digests={json.dumps(ALL_DIGESTS)}")
    assert plan.error is None, plan.error
    return plan


def test_the_plan_accepts_every_chart_digest_and_passes_only_known_keys():
    plan = digest_plan()
    errors = [e for r, chart, version in conformance.helm_releases(plan)
              for e in conformance.release_values_errors(r, chart, version)]
    # a key under a sub-chart's map that the parent's values.yaml does not list is reported at its first unknown part
    unknown = [e.split("): ", 1)[1].split(": not a key")[0] for e in errors]
    assert [p for p in unknown if not any(k == p or k.startswith(p + ".") for k in CHECKED_BY_HAND)] == []


def _references(manifests: list[Any], image: str) -> list[str]:
    """Every reference to `image` in the rendered objects (container images, custom resources' `image`, and
    arguments such as the operator's `--prometheus-config-reloader=`), as written."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str) and image in node:
            found.append(re.split(r"[=\s]", node)[-1])

    walk(manifests)
    return found


@needs_charts
@pytest.mark.parametrize("chart", [versions.KARPENTER.name, versions.KUBE_PROMETHEUS_STACK.name])
def test_the_chart_renders_each_image_by_the_digest_given(helm, dev_plan, chart):
    """helm template of the release as the plan passes it: `repository:tag@sha256:<given>` with image_digests, and
    exactly what the chart renders without them otherwise (Karpenter's chart pins its own digest by default)."""
    with_digests, missing = render_release(digest_plan(), helm, chart)
    without, _ = render_release(dev_plan, helm, chart)
    checked = 0
    for image, where in DIGESTABLE.items():
        if where.chart != chart or where.path.split(".")[0] in missing:
            continue  # a sub-chart ../shared/charts lacks renders nothing here (checked by hand: planning/security.py)
        refs = _references(with_digests, image)
        assert refs and set(refs) == {f"{image}@{ALL_DIGESTS[image]}"}, (image, refs)
        plain = set(_references(without, image))
        expected = {f"{image}@sha256:445baefaaa689029cc12ac1f659b916b0b82fb14308ce536f8521fcf079116fa"} \
            if chart == versions.KARPENTER.name else {image}
        assert plain == expected, (image, plain)
        checked += 1
    # kube-prometheus-stack's own templates always render: Prometheus, Alertmanager, operator, reloader, certgen
    assert checked >= (1 if chart == versions.KARPENTER.name else 5)


def test_chart_digests_change_only_those_releases_values(dev_plan):
    """Pulling chart images by digest changes the values of the releases that run them, and nothing else."""
    plan = digest_plan()
    before = {r.urn: r.inputs for r in dev_plan.resources}
    after = {r.urn: r.inputs for r in plan.resources}
    assert set(before) == set(after)
    changed = {urn for urn in before if before[urn] != after[urn]}
    releases = {r.urn: chart for r, chart, _ in conformance.helm_releases(plan)}
    assert {releases.get(urn) for urn in changed} == {versions.KARPENTER.name, versions.KUBE_PROMETHEUS_STACK.name}
    for urn in changed:
        assert {k for k in before[urn] if before[urn][k] != after[urn].get(k)} == {"values"}
