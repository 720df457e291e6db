"""voxhost on AWS: ECS on GPU instances behind an ALB, with WAF, EFS and queue-depth autoscaling."""

from voxhost_stack.config import StackConfig
from voxhost_stack.stack import VoxhostStack

__all__ = ["StackConfig", "VoxhostStack"]
