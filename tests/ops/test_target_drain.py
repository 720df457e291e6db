"""The target-group watcher against a real botocore ELBv2 client with stubbed responses."""

from __future__ import annotations

import asyncio
import logging

import pytest

pytest.importorskip("botocore")

import botocore.session  # noqa: E402
from botocore.stub import Stubber  # noqa: E402

from voxhost.ops.target_drain import TargetDrainWatcher  # noqa: E402

ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/voxhost/0123456789abcdef"
TARGET = {"Id": "10.0.3.7", "Port": 8000}


def _client():
    return botocore.session.get_session().create_client(
        "elbv2", region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test")


def _health(stubber: Stubber, state: str) -> None:
    stubber.add_response(
        "describe_target_health",
        {"TargetHealthDescriptions": [{"Target": TARGET, "TargetHealth": {"State": state}}]},
        {"TargetGroupArn": ARN, "Targets": [TARGET]},
    )


def _watcher(client, drains: list) -> TargetDrainWatcher:
    async def on_draining():
        drains.append("drain")

    watcher = TargetDrainWatcher(ARN, 8000, on_draining, interval_s=0.01, metadata_uri="http://unused", client=client)
    watcher.ip = TARGET["Id"]  # the metadata endpoint is exercised in tests/api/test_drain.py
    return watcher


def test_healthy_then_draining_starts_the_drain_once():
    client, drains = _client(), []
    watcher = _watcher(client, drains)
    with Stubber(client) as stubber:
        for state in ["initial", "healthy", "healthy", "draining"]:
            _health(stubber, state)
        asyncio.run(asyncio.wait_for(watcher.run(), 10))  # returns once it has started the drain
        stubber.assert_no_pending_responses()
        _health(stubber, "draining")  # another poll (there is none after run() returns) would not drain twice
        asyncio.run(watcher.poll_once())
    assert drains == ["drain"]
    assert watcher.state == "draining"


def test_api_errors_are_logged_quietly_and_retried(caplog):
    client, drains = _client(), []
    watcher = _watcher(client, drains)
    with Stubber(client) as stubber, caplog.at_level(logging.WARNING, "voxhost.target_drain"):
        _health(stubber, "healthy")
        stubber.add_client_error("describe_target_health", "Throttling", "Rate exceeded", 400)
        stubber.add_client_error("describe_target_health", "AccessDenied", "not authorized", 403)
        _health(stubber, "healthy")
        stubber.add_client_error("describe_target_health", "Throttling", "Rate exceeded", 400)
        _health(stubber, "draining")
        asyncio.run(asyncio.wait_for(watcher.run(), 10))
        stubber.assert_no_pending_responses()
    assert drains == ["drain"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # One line per outage (two outages here), no traceback: a missing permission must not flood the log.
    assert len(warnings) == 2 and all(r.exc_info is None for r in warnings)
    assert all("Throttling" in w.getMessage() for w in warnings)


def test_deregistered_target_without_draining_state_never_drains():
    """`unused` (not registered) is not a stop: a task whose target was never
    registered yet, or whose group is not this one, keeps serving."""
    client, drains = _client(), []
    watcher = _watcher(client, drains)
    with Stubber(client) as stubber:
        for state in ["unused", "initial", "unhealthy"]:
            _health(stubber, state)
        for _ in range(3):
            asyncio.run(watcher.poll_once())
    assert drains == [] and watcher.state == "unhealthy"


def test_without_boto3_the_watcher_says_so_once_and_stops(monkeypatch, caplog):
    import sys

    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ImportError
    watcher = TargetDrainWatcher(ARN, 8000, lambda: None, interval_s=0.01, metadata_uri="http://unused")
    with caplog.at_level(logging.ERROR, "voxhost.target_drain"):
        asyncio.run(asyncio.wait_for(watcher.run(), 5))
    assert not watcher.triggered
    assert [r.levelno for r in caplog.records] == [logging.ERROR] and "voxhost[aws]" in caplog.text
