"""Spot interruption: take the doomed instance's tasks out of the load balancer at once.

EventBridge calls this on "EC2 Spot Instance Interruption Warning" and "EC2 Instance
Rebalance Recommendation" for any instance in the region; instances outside this
stack's cluster are ignored.

- Interruption warning (2 minutes left): deregister every task target on the instance
  from the service's target groups now. Each task's server polls its own target
  (ops/target_drain.py, every 5 s): it reads `draining` within one poll and drains while
  the ALB still holds its connections: REST requests in flight finish, each live session
  gets its last transcript and a 1013, and the clients reconnect to the other tasks. ECS
  would only deregister the tasks once their replacements are healthy (the service keeps
  100% healthy during a replacement), after the instance is gone. The container instance
  is also set to DRAINING so nothing new is placed there (the agent does the same when
  ECS_ENABLE_SPOT_INSTANCE_DRAINING sees the notice; doing it here too costs nothing).
- Rebalance recommendation (an elevated risk, often minutes ahead, sometimes never
  followed by an interruption): set DRAINING only. ECS starts the replacements first and
  then stops these tasks through the normal sequence (deregistration, drain, SIGTERM);
  deregistering now would take the tasks' seats away before any replacement exists.

Needs: ecs:ListContainerInstances, ecs:ListTasks, ecs:DescribeTasks,
ecs:UpdateContainerInstancesState on this cluster, elasticloadbalancing:DeregisterTargets
on the service's target groups (deploy/aws/voxhost_stack/spot.py grants exactly these).
"""

from __future__ import annotations

import json
import logging
import os

log = logging.getLogger()
log.setLevel(logging.INFO)

INTERRUPTION = "EC2 Spot Instance Interruption Warning"
REBALANCE = "EC2 Instance Rebalance Recommendation"


def _clients():
    import boto3

    return boto3.client("ecs"), boto3.client("elbv2")


def task_targets(ecs, cluster: str, instance_id: str) -> tuple[str | None, list[str]]:
    """The instance's container-instance ARN in `cluster` (None: not ours) and its tasks' IPs."""
    found = ecs.list_container_instances(cluster=cluster, filter=f"ec2InstanceId == {instance_id}")
    arns = found.get("containerInstanceArns") or []
    if not arns:
        return None, []
    task_arns = ecs.list_tasks(cluster=cluster, containerInstance=arns[0]).get("taskArns") or []
    ips = []
    if task_arns:
        for task in ecs.describe_tasks(cluster=cluster, tasks=task_arns).get("tasks") or []:
            for attachment in task.get("attachments") or []:
                for detail in attachment.get("details") or []:
                    if detail.get("name") == "privateIPv4Address":
                        ips.append(detail["value"])
    return arns[0], ips


def handler(event, context=None, ecs=None, elbv2=None, environ=os.environ) -> dict:
    kind = event.get("detail-type")
    instance_id = (event.get("detail") or {}).get("instance-id")
    if kind not in (INTERRUPTION, REBALANCE) or not instance_id:
        log.info("ignored: %s", json.dumps({"detail-type": kind}))
        return {"action": "ignored"}
    if ecs is None or elbv2 is None:
        ecs, elbv2 = _clients()
    cluster = environ["CLUSTER"]
    container_instance, ips = task_targets(ecs, cluster, instance_id)
    if container_instance is None:
        log.info("%s: %s is not in cluster %s", kind, instance_id, cluster)
        return {"action": "not ours", "instance": instance_id}
    deregistered = []
    if kind == INTERRUPTION and ips:
        port = int(environ["CONTAINER_PORT"])
        for group in filter(None, environ["TARGET_GROUP_ARNS"].split(",")):
            elbv2.deregister_targets(TargetGroupArn=group, Targets=[{"Id": ip, "Port": port} for ip in ips])
            deregistered.append(group)
    ecs.update_container_instances_state(cluster=cluster, containerInstances=[container_instance],
                                         status="DRAINING")
    result = {"action": "deregistered" if deregistered else "draining", "instance": instance_id,
              "targets": ips, "target_groups": deregistered}
    log.info("%s: %s", kind, json.dumps(result))
    return result
