"""Cold-start arithmetic (planning/coldstart.py): each part from its stated figures."""

from __future__ import annotations

import math

import pytest

from planning import coldstart
from planning.catalog import load_catalog


def test_parts_follow_the_stated_figures():
    start = coldstart.cold_start(8)
    assert start.gpu_node_s == coldstart.GPU_NODE_READY_S
    # 12 GB at 28 MB/s: 429 s
    assert start.image_pull_s == math.ceil(12_000 / 28) == 429
    # 16 GB over 1500 MiB/s is ~10.2 s, read in 11 whole seconds, then the engine starts
    assert start.model_load_s == 11 + coldstart.ENGINE_START_S
    assert start.total_s == 180 + 429 + 81 and start.minutes == 12


@pytest.mark.parametrize("params, read_s", [(1, 2), (8, 11), (70, 90)])
def test_reading_the_weights_grows_with_the_model(params, read_s):
    assert coldstart.cold_start(params).model_load_s - coldstart.ENGINE_START_S == read_s


def test_every_catalog_model_has_a_cold_start_within_an_hour():
    for entry in load_catalog().models.values():
        start = coldstart.cold_start(entry.parameters_b)
        assert 0 < start.minutes <= 60, entry.name


def test_every_figure_says_where_it_comes_from():
    assert set(coldstart.SOURCES) == {"gpu_node", "image_pull", "model_load"}
    assert "ESTIMATE" in coldstart.SOURCES["gpu_node"] and "ASSUMED" in coldstart.SOURCES["image_pull"]
