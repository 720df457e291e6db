#!/usr/bin/env python3
"""CDK entry point: `cdk synth` / `cdk deploy` from deploy/aws (see docs/deploy.md).

Every setting is CDK context: cdk.json holds the defaults, `-c key=value` overrides
(e.g. `cdk deploy -c certificate_arn=arn:aws:acm:... -c max_tasks=20 -c egress=endpoints`).
"""

import os

import aws_cdk as cdk

from voxhost_stack import StackConfig, VoxhostStack

app = cdk.App()
config = StackConfig.from_context(app.node)
VoxhostStack(
    app, app.node.try_get_context("stack_name") or "Voxhost", config=config,
    env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")),
    description="voxhost: self-hosted OpenAI-compatible speech (STT + TTS) on ECS GPU instances",
)
if app.node.try_get_context("nag") != "off":
    from cdk_nag import AwsSolutionsChecks

    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
