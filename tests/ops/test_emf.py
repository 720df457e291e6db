"""CloudWatch EMF lines, checked against the specification's structure."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from voxhost.ops.context import RequestContext
from voxhost.ops.emf import EmfEmitter, task_id

# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
EMF_UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}


def validate_emf(doc: dict) -> None:
    """Raise AssertionError unless `doc` is a valid EMF document."""
    aws = doc["_aws"]
    assert isinstance(aws["Timestamp"], int) and aws["Timestamp"] > 1_600_000_000_000
    assert isinstance(aws["CloudWatchMetrics"], list) and aws["CloudWatchMetrics"]
    for directive in aws["CloudWatchMetrics"]:
        ns = directive["Namespace"]
        assert isinstance(ns, str) and 1 <= len(ns) <= 255 and ns.strip() == ns
        assert isinstance(directive["Dimensions"], list)
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list) and len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(doc[name], str) and doc[name], name  # dimension values: strings at top level
        metrics = directive["Metrics"]
        assert 1 <= len(metrics) <= 100
        names = [m["Name"] for m in metrics]
        assert len(set(names)) == len(names)
        for metric in metrics:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}
            assert metric.get("Unit", "None") in EMF_UNITS
            value = doc[metric["Name"]]  # values at top level
            if isinstance(value, list):
                assert 1 <= len(value) <= 100 and all(isinstance(v, (int, float)) for v in value)
            else:
                assert isinstance(value, (int, float)) and not isinstance(value, bool)


def test_emf_line_is_valid_and_carries_autoscaling_dimensions():
    out = io.StringIO()
    emitter = EmfEmitter(namespace="voxhost", service_name="voxhost-prod", task="abc123",
                         gauges=lambda: {"QueueDepth": 7, "InFlight": 2, "LiveSessions": 1}, out=out)
    for i in range(250):  # more than EMF's 100 values per array
        ctx = RequestContext(cost_usd=0.0001)
        emitter.record(ctx, 200, 0.01 * (i + 1))
    emitter.record(RequestContext(), 429, 0.001)
    emitter.record(RequestContext(), 500, 0.001)
    emitter.emit()
    doc = json.loads(out.getvalue().strip().splitlines()[0])
    validate_emf(doc)
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "voxhost"
    assert directive["Dimensions"] == [["ServiceName"], ["ServiceName", "TaskId"]]
    assert doc["ServiceName"] == "voxhost-prod" and doc["TaskId"] == "abc123"
    assert doc["QueueDepth"] == 7 and doc["InFlight"] == 2
    assert doc["ErrorCount"] == 1 and doc["RejectedCount"] == 1 and doc["Requests"] == 252
    assert len(doc["Latency"]) == 100 and max(doc["Latency"]) == 2500.0
    assert abs(doc["CostUSD"] - 0.025) < 1e-9
    # The interval resets after each line.
    emitter.emit()
    second = json.loads(out.getvalue().strip().splitlines()[-1])
    validate_emf(second)
    assert second["Requests"] == 0 and "Latency" not in second


def test_task_id_from_ecs_metadata_else_hostname():
    class Metadata(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"TaskARN": "arn:aws:ecs:us-east-1:123:task/voxhost/0f1e2d3c4b5a"}).encode()
            self.send_response(200 if self.path == "/v4/container-1/task" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{httpd.server_port}/v4/container-1"
        assert task_id({"ECS_CONTAINER_METADATA_URI_V4": uri}) == "0f1e2d3c4b5a"
    finally:
        httpd.shutdown()
    import socket

    assert task_id({}) == socket.gethostname()


def test_latency_per_route_and_websockets_left_out():
    """STT and TTS have their own targets (2 s, 3 s): one Latency series per route;
    a WebSocket (101) lasts a session, not a request, and is no latency at all."""
    out = io.StringIO()
    emitter = EmfEmitter(namespace="voxhost", service_name="voxhost", task="t", gauges=dict, out=out)
    emitter.record(RequestContext(route="/v1/audio/transcriptions"), 200, 1.5)
    emitter.record(RequestContext(route="/v1/audio/speech"), 200, 0.25)
    emitter.record(RequestContext(route="/v1/realtime"), 101, 600.0)
    emitter.emit()
    main, *routes = [json.loads(line) for line in out.getvalue().strip().splitlines()]
    for doc in (main, *routes):
        validate_emf(doc)
    assert sorted(main["Latency"]) == [250.0, 1500.0]  # no 600 s session
    assert {r["Route"]: r["Latency"] for r in routes} == {"/v1/audio/speech": [250.0],
                                                         "/v1/audio/transcriptions": [1500.0]}
    assert all(r["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["ServiceName", "Route"]] for r in routes)


def test_counters_go_out_as_the_interval_increase():
    out = io.StringIO()
    total = {"LiveSessionsRefused": 5.0}
    emitter = EmfEmitter(namespace="voxhost", service_name="s", task="t", gauges=lambda: {"LiveSessions": 2},
                         counters=lambda: dict(total), out=out)
    total["LiveSessionsRefused"] = 12.0
    assert emitter.emit()["LiveSessionsRefused"] == 7.0
    assert emitter.emit()["LiveSessionsRefused"] == 0.0
    validate_emf(json.loads(out.getvalue().splitlines()[0]))
