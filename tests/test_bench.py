"""`make bench` (tools/bench.py) runs and reports; what the figures are is not asserted (wall-clock time)."""

from __future__ import annotations

from tools import baseline, bench


def test_the_plan_figures_cover_every_recorded_stack():
    figures = bench.plan_figures(runs=1)
    assert [f.name for f in figures] == [f"offline plan of the {name} stack, median of 1" for name in baseline.STACKS]
    assert all(f.value > 0 and f.unit == "s" for f in figures)


def test_figures_over_budget_are_marked_and_fail_only_with_check(monkeypatch, capsys):
    monkeypatch.setattr(bench, "plan_figures", lambda runs: [bench.Figure("plan", 12.5, "s", 10)])
    monkeypatch.setattr(bench, "client_figures", lambda: [bench.Figure("ttft error", -3.0, "ms", 60)])
    assert bench.main([]) == 0
    plan_line, ttft_line = capsys.readouterr().out.splitlines()
    assert plan_line.split() == ["plan", "12.50", "s", "budget", "10", "s", "OVER", "BUDGET"]
    assert ttft_line.split() == ["ttft", "error", "-3.00", "ms", "budget", "60", "ms"]
    assert bench.main(["--check"]) == 1
    monkeypatch.setattr(bench, "plan_figures", lambda runs: [])
    assert bench.main(["--check"]) == 0
