"""Schemathesis against the live server (real models): cases generated from
the OpenAPI document. No 5xx, and every status and error body is one the
document declares, so clients and fuzzers generating from it are not misled."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance


@pytest.fixture(scope="session")
def live_schema(base_url):
    return schemathesis.openapi.from_url(base_url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("live_schema")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_get_no_5xx_and_match_the_schema(case, base_url):
    case.call_and_validate(base_url=base_url, timeout=120,
                           checks=[not_a_server_error, status_code_conformance, response_schema_conformance])
