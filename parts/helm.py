"""Helm releases: every chart of the product is a real `helm.v3.Release` (upgradable by Helm) at a pinned version."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from planning.security import chart_digest_values
from planning.versions import ChartPin


def release(resource_name: str, chart: ChartPin, *, name: str, namespace: str, values: dict[str, Any],
            parent: pulumi.Resource, depends_on: list[pulumi.Resource] | None = None,
            timeout: int = 600, image_digests: dict[str, str] | None = None) -> k8s.helm.v3.Release:
    """A release of `chart` named `name`; Pulumi waits (up to `timeout` seconds) until its resources are ready.
    `image_digests` (config image_digests) pulls the chart's images by digest where the chart has a key for it
    (planning/security.py CHART_IMAGE_DIGESTS); without one for this chart the values are passed unchanged."""
    return k8s.helm.v3.Release(
        resource_name,
        name=name,
        chart=chart.repo if chart.is_oci else chart.name,
        version=chart.version,
        repository_opts=None if chart.is_oci else k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
        namespace=namespace,
        values=merged(values, chart_digest_values(chart.name, image_digests or {})),
        timeout=timeout,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on or []),
    )


def merged(values: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`values` with `overlay` merged in, map by map (the overlay wins on a leaf); neither is changed."""
    out = dict(values)
    for key, value in overlay.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
