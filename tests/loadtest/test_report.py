"""loadtest/report.py: the figures a load test reports, from known samples (the live
run in test_load_run.py shows they come out of a real server; here, the arithmetic)."""

from __future__ import annotations

import pytest

from voxhost.loadtest.report import plot, summarize
from voxhost.loadtest.runner import LoadResult, Stage
from voxhost.loadtest.scenarios import Sample


def _result() -> LoadResult:
    rest = [Sample("/v1/audio/transcriptions", 0.0, latency, 200) for latency in (0.1, 0.2, 0.3, 0.4)]
    rest += [Sample("/v1/audio/transcriptions", 0.0, 0.01, 429), Sample("/v1/audio/transcriptions", 0.0, 1.0, 500)]
    live = [Sample("/v1/realtime", 0.0, 0.5, 1000), Sample("/v1/realtime", 0.0, 0.02, 1013),
            Sample("/v1/realtime", 0.0, 2.0, 0)]
    stages = [Stage(players=4, started=0.0, ended=2.0, offered_rps=3.0, samples=rest + live),
              Stage(players=8, started=2.0, ended=3.0, offered_rps=6.0, samples=[])]
    return LoadResult(stages=stages, depth=[(0.5, 1.0), (1.5, 7.0), (2.5, 3.0)], t0=0.0, scenarios=[])


def test_rows_per_stage_and_route_count_ok_rejected_and_errors():
    rows = summarize(_result())
    assert [(r["players"], r["route"]) for r in rows] == [(4, "/v1/audio/transcriptions"), (4, "/v1/realtime")]
    rest, live = rows
    assert (rest["requests"], rest["ok"], rest["rejected"], rest["errors"]) == (6, 4, 1, 1)
    assert rest["throughput_rps"] == 2.0  # 4 accepted turns in a 2 s stage
    assert rest["p50_ms"] == pytest.approx(250.0) and rest["p99_ms"] == pytest.approx(397.0)
    assert (live["ok"], live["rejected"], live["errors"]) == (1, 1, 1)  # 1013: refused; 0: transport error
    assert rest["max_queue_depth"] == live["max_queue_depth"] == 7.0  # only the depth within the stage


def test_a_route_with_nothing_accepted_has_no_percentiles():
    result = _result()
    result.stages[1].samples = [Sample("/v1/audio/speech", 2.1, 0.01, 429)]
    rows = summarize(result)
    last = rows[-1]
    assert last["route"] == "/v1/audio/speech" and last["ok"] == 0 and last["p50_ms"] is None


def test_the_table_fits_80_columns_without_dict_reprs():
    from voxhost.cli.loadtest import text_table

    result = _result()
    result.stages[1].samples = [Sample("/v1/audio/speech", 2.1, 12.3456, 200)]
    text = text_table(summarize(result), {"/v1/realtime": "live", "/v1/audio/transcriptions": "rest",
                                          "/v1/audio/speech": "tts"})
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "{" not in text and "…" not in text  # nothing cut short
    assert "250/385/397" in text and "12346/12346/12346" in text and "live" in text


def test_the_queue_plot_never_goes_below_zero(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    drawn = []
    real_savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **kw: (drawn.append(fig), real_savefig(fig, *a, **kw)))
    result = _result()
    result.depth = [(0.5, 0.0), (1.5, 0.0), (2.5, 0.0)]  # an idle server: the case that went to -0.05
    plot(result, summarize(result), tmp_path / "load.png")
    bottom, top = drawn[0].axes[1].get_ylim()
    assert bottom == 0 and top >= 1
    assert (tmp_path / "load.png").stat().st_size > 0
