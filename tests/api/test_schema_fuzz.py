"""Schemathesis against the live server (real models): cases generated from
the OpenAPI document. No 5xx, and every status and error body is one the
document declares, so clients and fuzzers generating from it are not misled.

Driven with plain hypothesis (`operation.as_strategy()`): schemathesis's own
pytest plugin does not load under this pytest version."""

from __future__ import annotations

import schemathesis

# Imported now, at collection, not lazily by `from_url` inside the test: pytest rewrites (and so
# compiles) these modules on first import, and on CPython 3.11 compiling while another thread
# (the in-process server's) also builds an AST can fail with "SystemError: AST constructor
# recursion depth mismatch" (python/cpython#106905; a clean-clone run hit it).
import schemathesis.specs.openapi.schemas  # noqa: F401
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

CASES_PER_OPERATION = 50
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def test_generated_requests_get_no_5xx_and_match_the_schema(base_url):
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    # Every case is drawn first, and only then sent. Drawing builds ASTs in this thread (hypothesis
    # parses lambdas' source to describe strategies), and on CPython 3.11 that fails with the same
    # SystemError as above when the in-process server's thread compiles something at the same
    # moment (a request's first lazy import; a clean-clone run hit it). The server is idle while
    # cases are drawn, and nothing here parses while they are sent.
    drawn = []
    for operation in operations:
        @settings(max_examples=CASES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None, phases=[Phase.explicit, Phase.generate])
        @given(operation.as_strategy())
        def draw(case):
            drawn.append(case)

        draw()
    cases = [case.call_and_validate(base_url=base_url, timeout=120, checks=CHECKS).status_code for case in drawn]
    print(f"schemathesis: {len(cases)} cases over {len(operations)} operations, statuses "
          f"{ {s: cases.count(s) for s in sorted(set(cases))} }")
    assert len(cases) >= 100
