#!/usr/bin/env python3
"""CDK entry point: `cdk synth` / `cdk deploy` from deploy/aws (see docs/deploy.md).

Every setting is CDK context. An environment's settings live in one file,
deploy/aws/env/<name>.json, read with `-c env=<name>` (the Makefile passes ENV=<name>
to every step: synth, deploy, release, destroy), so a redeploy can't drop a setting
someone once passed by hand. `-c key=value` still overrides a key for one run;
voxhost_stack/config.py holds the defaults.
"""

import os

import aws_cdk as cdk
from voxhost_stack import StackConfig
from voxhost_stack.environment import apply_environment
from voxhost_stack.regions import add_stacks

app = cdk.App()
apply_environment(app.node)
config = StackConfig.from_context(app.node)
add_stacks(app, app.node.try_get_context("stack_name") or "Voxhost", config,
           account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
if app.node.try_get_context("nag") != "off":
    from cdk_nag import AwsSolutionsChecks

    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
