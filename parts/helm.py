"""Helm releases: every chart of the product is a real `helm.v3.Release` (upgradable by Helm) at a pinned version."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from planning.versions import ChartPin


def release(resource_name: str, chart: ChartPin, *, name: str, namespace: str, values: dict[str, Any],
            parent: pulumi.Resource, depends_on: list[pulumi.Resource] | None = None,
            timeout: int = 600) -> k8s.helm.v3.Release:
    """A release of `chart` named `name`; Pulumi waits (up to `timeout` seconds) until its resources are ready."""
    return k8s.helm.v3.Release(
        resource_name,
        name=name,
        chart=chart.repo if chart.is_oci else chart.name,
        version=chart.version,
        repository_opts=None if chart.is_oci else k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
        namespace=namespace,
        values=values,
        timeout=timeout,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on or []),
    )
