"""ops/metrics.py: what a finished request, the scheduler and live sessions put
into the Prometheus exposition (parsed back with prometheus_client's own parser)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from voxhost.ops.context import RequestContext
from voxhost.ops.metrics import Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    text = metrics.expose().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(metrics: Metrics, name: str, **labels) -> float:
    return _samples(metrics).get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_finished_request_is_counted_timed_and_priced():
    m = Metrics(gpu=False)
    ctx = RequestContext(route="/v1/audio/transcriptions", queue_seconds=0.2, compute_seconds=0.5,
                         cost_usd=0.001, audio_seconds=3.0)
    m.observe_request(ctx, "POST", 200, 0.8)
    route = "/v1/audio/transcriptions"
    assert _value(m, "voxhost_requests_total", route=route, method="POST", status="200") == 1
    assert _value(m, "voxhost_request_latency_seconds_count", route=route) == 1
    assert _value(m, "voxhost_request_latency_seconds_sum", route=route) == 0.8
    assert _value(m, "voxhost_compute_seconds_sum", route=route) == 0.5
    assert _value(m, "voxhost_cost_usd_total", route=route) == 0.001
    assert _value(m, "voxhost_audio_seconds_total", route=route) == 3.0
    assert _value(m, "voxhost_errors_total", route=route, status="200", kind="client") == 0


def test_errors_are_split_into_rejected_client_and_server():
    m = Metrics(gpu=False)
    for status in (429, 503, 400, 500):
        m.observe_request(RequestContext(route="/r"), "POST", status, 0.01)
    assert _value(m, "voxhost_errors_total", route="/r", status="429", kind="rejected") == 1
    assert _value(m, "voxhost_errors_total", route="/r", status="503", kind="rejected") == 1
    assert _value(m, "voxhost_errors_total", route="/r", status="400", kind="client") == 1
    assert _value(m, "voxhost_errors_total", route="/r", status="500", kind="server") == 1


def test_abandoned_work_is_counted_and_never_priced():
    m = Metrics(gpu=False)
    ctx = RequestContext(route="/r", compute_seconds=2.0, cost_usd=0.5, audio_seconds=10.0, abandoned=True)
    m.observe_request(ctx, "POST", 499, 2.0)
    assert _value(m, "voxhost_requests_abandoned_total", route="/r") == 1
    assert _value(m, "voxhost_cost_usd_total", route="/r") == 0
    assert _value(m, "voxhost_audio_seconds_total", route="/r") == 0


def test_scheduler_observer_and_live_sessions():
    m = Metrics(gpu=False)
    obs = m.observer()
    obs.queue_depth("whisper-base", "live", 3)
    obs.queue_depth("whisper-tiny.en", "interactive", 2)
    obs.in_flight("whisper-base", 1)
    obs.batch("whisper-base", 4)
    obs.job_done("whisper-base", "live", 0.05, 0.3)
    obs.rejected("whisper-base", "bulk", "queue_full")
    m.session_opened_or_closed(5)
    assert m.total_queue_depth() == 5 and m.total_in_flight() == 1
    assert _value(m, "voxhost_queue_depth", engine="whisper-base", lane="live") == 3
    assert _value(m, "voxhost_batch_size_sum", engine="whisper-base") == 4
    assert _value(m, "voxhost_scheduler_wait_seconds_count", engine="whisper-base", lane="live") == 1
    assert _value(m, "voxhost_scheduler_rejections_total", engine="whisper-base", lane="bulk",
                  reason="queue_full") == 1
    assert _value(m, "voxhost_live_sessions") == 5


def test_each_app_has_its_own_registry():
    a, b = Metrics(gpu=False), Metrics(gpu=False)
    a.observe_request(RequestContext(route="/r"), "GET", 200, 0.01)
    assert _value(a, "voxhost_requests_total", route="/r", method="GET", status="200") == 1
    assert _value(b, "voxhost_requests_total", route="/r", method="GET", status="200") == 0


def test_work_is_split_by_kind_and_refusals_counted():
    from voxhost.ops.metrics import Metrics

    m = Metrics(gpu=False)
    m.queue_depth_changed("stt:large-v3-turbo", "interactive", 3)
    m.queue_depth_changed("stt:large-v3-turbo", "bulk", 2)
    m.queue_depth_changed("stt:whisper-base", "interactive", 1)
    m.queue_depth_changed("tts", "interactive", 4)
    m.in_flight_changed("stt:large-v3-turbo", 1)
    m.in_flight_changed("tts", 2)
    assert (m.work("stt", queued=True), m.work("tts", queued=True)) == (6, 4)
    assert (m.work("stt", queued=False), m.work("tts", queued=False)) == (1, 2)
    assert m.stt_queued._value.get() == 6 and m.tts_in_flight._value.get() == 2
    m.sessions_rejected.labels("capacity").inc(3)
    m.sessions_rejected.labels("draining").inc()  # a drain is not unmet demand
    assert m.sessions_refused() == 3
