"""Property-based fuzzing of every operation in the running service's own OpenAPI schema.

schemathesis reads /docs.json from the real `bentoml serve` and sends each operation the schema's
examples, boundary and malformed requests (coverage phase) and generated requests, valid and
invalid (fuzzing phase). No response may be a 5xx, and each must be one the schema documents: its
status, its media type and its body. Derandomized, with a bounded number of examples, so that a
failure in CI reproduces locally. Run alone: `python -m pytest tests/e2e/test_fuzz.py -q`.
"""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis.core.result import Ok
from schemathesis.errors import FailureGroup

# schemathesis 4.32.5's pytest integration for a schema known only at run time
# (`schemathesis.pytest.from_fixture`) sets `Function._nodeid`, which pytest 9.2 no longer has;
# so its builder makes each operation's test, and they run here as subtests.
from schemathesis.pytest.lazy import get_all_tests

EXAMPLES_PER_OPERATION = 30

# The keys of a schemathesis.toml, given here so that no config file on the machine changes the run.
CONFIG = {
    "seed": 20241126,
    "generation": {
        "mode": "all",  # requests that match the schema and requests that break it
        "max-examples": EXAMPLES_PER_OPERATION,
        "deterministic": True,
        "database": "none",  # no replay of earlier runs' failures: every run sends the same cases
    },
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
    },
    "checks": {
        "enabled": False,
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
    },
    "request-timeout": 60,
}


@pytest.fixture(scope="session")
def api_schema(url):
    config = schemathesis.Config.from_dict(CONFIG)
    return schemathesis.openapi.from_url(f"{url}/docs.json", config=config)


def call_and_validate(case) -> None:
    case.call_and_validate()


def test_no_server_error_and_every_response_documented(api_schema, subtests):
    schema = api_schema.clone(test_function=call_and_validate)
    tests = list(
        get_all_tests(schema=schema, test_func=call_and_validate, settings=None, given_kwargs={})
    )
    assert len(tests) >= 5, "the schema lists no service APIs"
    for result in tests:
        if not isinstance(result, Ok):  # an operation the schema defines wrongly
            error = result.err()
            with subtests.test(f"{error.method} {error.path}".upper()):
                error.as_failing_test_function()()
            continue
        operation, test = result.ok()
        with subtests.test(operation.label):
            try:
                test()
            except FailureGroup as failures:  # its message names each check and gives a curl
                report = failures.message
            else:
                continue
            pytest.fail(report, pytrace=False)  # outside `except`: no chained traceback
