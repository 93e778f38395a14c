"""Property-based API fuzzing with schemathesis: no request, however odd, gets a 5xx.

The app runs over ASGI on a throwaway SQLite database seeded with one live campaign (so that
some generated ids are real), and every request carries a valid operator token. Only the
``not_a_server_error`` check is enforced; other conformance findings are documented in the
engineers' report rather than asserted here.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.e2e.api_helpers import T0, Api, TestClient, build_container
from tuan.entrypoints.api.app import create_app
from tuan.shared.clock import FrozenClock

_TMP = Path(tempfile.mkdtemp(prefix="tuan-schemathesis-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
_CLOCK = FrozenClock(T0)
_CONTAINER = build_container(_TMP, _CLOCK)
atexit.register(_CONTAINER.close)
APP = create_app(_CONTAINER, scheduler=False)

schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def _seed() -> str:
    """An operator token, and a community, SKU, live campaign and open group to aim at."""
    with TestClient(APP) as client:
        api = Api(client, _CONTAINER, _CLOCK)
        com = api.community()
        sku = api.sku(stock=50)
        camp = api.campaign(sku["id"], group_size=2)
        customer = api.customer("张三", com["id"])
        api.open(camp["id"], sku["id"], api.customer_token(customer["id"]))
        return api.operator


OPERATOR = _seed()
AUTH = {"Authorization": f"Bearer {OPERATOR}"}


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors(case: schemathesis.Case) -> None:
    response = case.call(headers=AUTH)
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
