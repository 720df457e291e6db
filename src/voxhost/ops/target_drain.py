"""Start the drain when the load balancer starts deregistering this task.

ECS stops a task in sequence: it deregisters the target, the ALB waits out
its deregistration delay and then closes every connection it still holds
(WebSockets included), and only then does ECS send SIGTERM. A server that
waits for SIGTERM learns of the stop after its live sessions were cut. So,
when the stack sets VOXHOST_DRAIN_TARGET_GROUP_ARN, this watcher polls the
target group's health for this task's own target (its IP from the ECS task
metadata endpoint v4, its port the server's) and starts the same drain
SIGTERM would the first time the target reads `draining`: /ready 503, new
work refused, accepted work finished, live sessions closed with their last
transcripts, all while the ALB still forwards those connections.

boto3 is imported lazily (the `aws` extra, installed in the image): a dev box
never needs it. Every AWS or metadata error is logged and retried at the next
poll; the watcher never takes the server down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("voxhost.target_drain")

METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"


def container_ip(metadata_uri: str, timeout_s: float = 2.0) -> str:
    """This container's IPv4 address from the ECS task metadata endpoint v4
    (awsvpc: the task's ENI address, the ALB target's id)."""
    with urllib.request.urlopen(metadata_uri, timeout=timeout_s) as resp:  # noqa: S310 - link-local ECS endpoint
        container = json.load(resp)
    for network in container.get("Networks") or []:
        for address in network.get("IPv4Addresses") or []:
            return address
    raise LookupError(f"no IPv4 address in the container metadata at {metadata_uri}")


def elbv2_client(target_group_arn: str):
    """An ELBv2 client in the target group's own region (from its ARN)."""
    import boto3  # the `aws` extra: only the deployed image needs it

    region = target_group_arn.split(":")[3] or None
    return boto3.client("elbv2", region_name=region)


class TargetDrainWatcher:
    """Polls DescribeTargetHealth for one target; calls `on_draining` once."""

    def __init__(self, target_group_arn: str, port: int, on_draining: Callable[[], Awaitable[Any]], *,
                 interval_s: float = 5.0, metadata_uri: str | None = None, client=None):
        self.target_group_arn = target_group_arn
        self.port = port
        self.on_draining = on_draining
        self.interval_s = interval_s
        self.metadata_uri = metadata_uri if metadata_uri is not None else os.environ.get(METADATA_ENV, "")
        self.client = client
        self.ip: str | None = None
        self.state: str | None = None  # the target's last state read
        self.triggered = False
        self.failures = 0  # consecutive failed polls

    def _target_state(self) -> str:
        if self.client is None:
            self.client = elbv2_client(self.target_group_arn)
        if self.ip is None:
            self.ip = container_ip(self.metadata_uri)
            log.info("watching target %s:%d in %s", self.ip, self.port, self.target_group_arn)
        answer = self.client.describe_target_health(
            TargetGroupArn=self.target_group_arn, Targets=[{"Id": self.ip, "Port": self.port}])
        descriptions = answer.get("TargetHealthDescriptions") or []
        return descriptions[0]["TargetHealth"]["State"] if descriptions else "unused"

    async def poll_once(self) -> str | None:
        """One poll: the target's state, or None when it could not be read."""
        try:
            state = await asyncio.to_thread(self._target_state)
        except Exception as exc:  # throttling, credentials, network: try again next time
            # One warning per outage, not one every poll (a missing permission would
            # otherwise fill the log); the rest at debug.
            level = logging.DEBUG if self.failures else logging.WARNING
            self.failures += 1
            log.log(level, "target health unavailable (%s: %s); retrying every %.0fs",
                    type(exc).__name__, exc, self.interval_s)
            return None
        if self.failures:
            log.info("target health readable again after %d failed polls", self.failures)
            self.failures = 0
        if state != self.state:
            log.info("target state %s -> %s", self.state, state)
        self.state = state
        if state == "draining" and not self.triggered:
            self.triggered = True
            log.info("target is draining: the load balancer is deregistering this task; draining now")
            await self.on_draining()
        return state

    async def run(self) -> None:
        """Poll until the drain has been started (or the task is cancelled)."""
        if not self.metadata_uri:
            log.warning("%s is not set (not on ECS?): not watching the target group", METADATA_ENV)
            return
        if self.client is None:
            try:
                import boto3  # noqa: F401
            except ImportError:
                log.error("VOXHOST_DRAIN_TARGET_GROUP_ARN is set but boto3 is not installed (pip install "
                          "'voxhost[aws]'): not watching the target group; only SIGTERM will drain")
                return
        while not self.triggered:
            await self.poll_once()
            if not self.triggered:
                await asyncio.sleep(self.interval_s)
