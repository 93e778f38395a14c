"""The permission matrix over the API: every route, every role.

``ROUTE_PERMS`` says which permissions open each API route (any one of them will do); the test
checks that the table covers every route the app serves (a new route must be added here), then
calls each route with a token of each role: roles the matrix allows get past the check (any
answer but 401/403), the others get a 403 problem document. Bodies and ids are deliberately
unknown, so nothing is changed by an allowed call either.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from tests.e2e.api_helpers import Api, running_api
from tuan.accounts.permissions import MATRIX, Perm, Role

P = Perm
ROUTE_PERMS: dict[tuple[str, str], tuple[Perm, ...] | None] = {
    # None: no permission check (public, or authenticated by a provider's signature)
    ("GET", "/api/v1/health"): None,
    ("GET", "/api/v1/ready"): None,
    ("GET", "/sandbox/pay/{token}"): None,
    ("POST", "/sandbox/pay/{token}"): None,
    ("POST", "/api/v1/payments/callbacks/{provider}"): None,
    ("GET", "/api/v1/reconcile"): (P.RECONCILE_RUN,),
    ("POST", "/api/v1/campaigns"): (P.CAMPAIGNS_EDIT,),
    ("PUT", "/api/v1/campaigns/{campaign_id}"): (P.CAMPAIGNS_EDIT,),
    ("POST", "/api/v1/campaigns/{campaign_id}/status"): (P.CAMPAIGNS_EDIT,),
    ("GET", "/api/v1/campaigns"): (P.CAMPAIGNS_VIEW, P.SHOP),
    ("GET", "/api/v1/campaigns/{campaign_id}"): (P.CAMPAIGNS_VIEW, P.SHOP),
    ("POST", "/api/v1/campaigns/{campaign_id}/groups"): (P.SHOP, P.ACT_FOR_CUSTOMER),
    ("POST", "/api/v1/groups/{group_id}/join"): (P.SHOP, P.ACT_FOR_CUSTOMER),
    ("POST", "/api/v1/groups/join"): (P.SHOP, P.ACT_FOR_CUSTOMER),
    ("GET", "/api/v1/groups/{group_id}"): (P.GROUPS_VIEW, P.SHOP),
    ("GET", "/api/v1/groups/by-code/{invite_code}"): (P.GROUPS_VIEW, P.SHOP),
    ("GET", "/api/v1/orders/{order_id}"): (P.ORDERS_VIEW, P.SHOP),
    ("POST", "/api/v1/orders/{order_id}/cancel"): (P.ACT_FOR_CUSTOMER, P.SHOP),
    ("POST", "/api/v1/orders/{order_id}/payments"): (P.ACT_FOR_CUSTOMER, P.SHOP),
    ("GET", "/api/v1/orders/{order_id}/presale"): (P.ORDERS_VIEW, P.SHOP),
    ("POST", "/api/v1/orders/{order_id}/balance-payments"): (P.ACT_FOR_CUSTOMER, P.SHOP),
    ("GET", "/api/v1/payments/{payment_id}"): (P.ORDERS_VIEW, P.SHOP),
    ("POST", "/api/v1/orders/{order_id}/refunds"): (P.REFUNDS_CREATE,),
    ("GET", "/api/v1/orders/{order_id}/refunds"): (P.ORDERS_VIEW, P.SHOP),
    ("POST", "/api/v1/communities"): (P.COMMUNITIES_EDIT,),
    ("GET", "/api/v1/communities"): (P.COMMUNITIES_VIEW, P.SHOP),
    ("GET", "/api/v1/communities/{community_id}"): (P.COMMUNITIES_VIEW, P.SHOP),
    ("POST", "/api/v1/communities/{community_id}/leaders"): (P.COMMUNITIES_EDIT,),
    ("POST", "/api/v1/communities/{community_id}/pickup-points"): (P.COMMUNITIES_EDIT,),
    ("POST", "/api/v1/customers"): (P.CUSTOMERS_CREATE,),
    ("POST", "/api/v1/products"): (P.CATALOG_EDIT,),
    ("POST", "/api/v1/products/{product_id}/skus"): (P.CATALOG_EDIT,),
    ("GET", "/api/v1/skus/{sku_id}"): (P.STOCK_VIEW, P.CATALOG_VIEW, P.SHOP),
    ("POST", "/api/v1/skus/{sku_id}/stock"): (P.STOCK_EDIT,),
    ("PUT", "/api/v1/skus/{sku_id}/warning-level"): (P.STOCK_EDIT,),
    ("POST", "/api/v1/tokens"): (P.TOKENS_MANAGE,),
    ("POST", "/api/v1/webhooks"): (P.NOTIFICATIONS_EDIT,),
    ("GET", "/api/v1/webhooks"): (P.NOTIFICATIONS_EDIT,),
    ("PUT", "/api/v1/webhooks/{endpoint_id}/active"): (P.NOTIFICATIONS_EDIT,),
    ("POST", "/api/v1/notifications/{notification_id}/requeue"): (P.NOTIFICATIONS_EDIT,),
    # customers see their own in-app messages; staff need notifications.view
    ("GET", "/api/v1/notifications"): (P.NOTIFICATIONS_VIEW, P.SHOP),
    ("POST", "/api/v1/events"): (P.EVENTS_INGEST,),
    # campaign projects (tuan.projects): view to read, edit to change
    ("GET", "/api/v1/projects/sop-templates"): (P.PROJECTS_VIEW,),
    ("GET", "/api/v1/projects/sop-templates/{template_id}"): (P.PROJECTS_VIEW,),
    ("PUT", "/api/v1/projects/sop-templates/{code}"): (P.PROJECTS_EDIT,),
    ("POST", "/api/v1/projects/sop-templates/{template_id}/apply"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/calendar/{user_id}.ics"): None,  # the feed secret in the address
    ("POST", "/api/v1/projects/calendar/{user_id}/token"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/tasks/{task_id}"): (P.PROJECTS_VIEW,),
    ("PATCH", "/api/v1/projects/tasks/{task_id}"): (P.PROJECTS_EDIT,),
    ("DELETE", "/api/v1/projects/tasks/{task_id}"): (P.PROJECTS_EDIT,),
    ("POST", "/api/v1/projects/tasks/{task_id}/move"): (P.PROJECTS_EDIT,),
    ("POST", "/api/v1/projects/tasks/{task_id}/checklist"): (P.PROJECTS_EDIT,),
    ("PATCH", "/api/v1/projects/checklist/{item_id}"): (P.PROJECTS_EDIT,),
    ("DELETE", "/api/v1/projects/checklist/{item_id}"): (P.PROJECTS_EDIT,),
    ("POST", "/api/v1/projects/tasks/{task_id}/comments"): (P.PROJECTS_EDIT,),
    ("POST", "/api/v1/projects/tasks/{task_id}/attachments"): (P.PROJECTS_EDIT,),
    ("DELETE", "/api/v1/projects/attachments/{attachment_id}"): (P.PROJECTS_EDIT,),
    ("POST", "/api/v1/projects/links"): (P.PROJECTS_EDIT,),
    ("DELETE", "/api/v1/projects/links/{pred_id}/{succ_id}"): (P.PROJECTS_EDIT,),
    ("PATCH", "/api/v1/projects/phases/{phase_id}"): (P.PROJECTS_EDIT,),
    ("DELETE", "/api/v1/projects/phases/{phase_id}"): (P.PROJECTS_EDIT,),
    ("PATCH", "/api/v1/projects/milestones/{milestone_id}"): (P.PROJECTS_EDIT,),
    ("DELETE", "/api/v1/projects/milestones/{milestone_id}"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects"): (P.PROJECTS_VIEW,),
    ("POST", "/api/v1/projects"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/{project_id}"): (P.PROJECTS_VIEW,),
    ("PATCH", "/api/v1/projects/{project_id}"): (P.PROJECTS_EDIT,),
    ("PUT", "/api/v1/projects/{project_id}/members/{user_id}"): (P.PROJECTS_EDIT,),
    ("DELETE", "/api/v1/projects/{project_id}/members/{user_id}"): (P.PROJECTS_EDIT,),
    ("POST", "/api/v1/projects/{project_id}/phases"): (P.PROJECTS_EDIT,),
    ("POST", "/api/v1/projects/{project_id}/milestones"): (P.PROJECTS_EDIT,),
    ("PUT", "/api/v1/projects/{project_id}/campaigns/{campaign_id}"): (P.PROJECTS_EDIT,),
    ("DELETE", "/api/v1/projects/{project_id}/campaigns/{campaign_id}"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/{project_id}/columns"): (P.PROJECTS_VIEW,),
    ("PUT", "/api/v1/projects/{project_id}/columns"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/{project_id}/tasks"): (P.PROJECTS_VIEW,),
    ("POST", "/api/v1/projects/{project_id}/tasks"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/{project_id}/links"): (P.PROJECTS_VIEW,),
    ("GET", "/api/v1/projects/{project_id}/schedule"): (P.PROJECTS_VIEW,),
    ("GET", "/api/v1/projects/{project_id}/tasks.csv"): (P.PROJECTS_VIEW,),
    ("POST", "/api/v1/projects/{project_id}/tasks.csv"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/{project_id}/calendar.ics"): (P.PROJECTS_VIEW,),
    # project controls (routes/project_tracking.py)
    ("GET", "/api/v1/projects/{project_id}/goals"): (P.PROJECTS_VIEW,),
    ("POST", "/api/v1/projects/{project_id}/goals"): (P.PROJECTS_EDIT,),
    ("DELETE", "/api/v1/projects/{project_id}/goals/{goal_id}"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/{project_id}/budget"): (P.PROJECTS_VIEW,),
    ("POST", "/api/v1/projects/{project_id}/budget/template"): (P.PROJECTS_EDIT,),
    ("POST", "/api/v1/projects/{project_id}/budget/lines"): (P.PROJECTS_EDIT,),
    ("PATCH", "/api/v1/projects/{project_id}/budget/lines/{line_id}"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/{project_id}/budget/spend"): (P.PROJECTS_VIEW,),
    ("POST", "/api/v1/projects/{project_id}/budget/lines/{line_id}/spend"): (P.PROJECTS_EDIT,),
    ("POST", "/api/v1/projects/{project_id}/budget/import"): (P.PROJECTS_EDIT,),
    ("POST", "/api/v1/projects/{project_id}/budget/sync"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/{project_id}/budget/burn"): (P.PROJECTS_VIEW,),
    ("GET", "/api/v1/projects/{project_id}/risks"): (P.PROJECTS_VIEW,),
    ("POST", "/api/v1/projects/{project_id}/risks"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/{project_id}/risks/{risk_id}"): (P.PROJECTS_VIEW,),
    ("PATCH", "/api/v1/projects/{project_id}/risks/{risk_id}"): (P.PROJECTS_EDIT,),
    ("POST", "/api/v1/projects/{project_id}/risks/{risk_id}/status"): (P.PROJECTS_EDIT,),
    ("POST", "/api/v1/projects/{project_id}/risks/{risk_id}/triggers"): (P.PROJECTS_EDIT,),
    ("DELETE", "/api/v1/projects/{project_id}/risks/{risk_id}/triggers/{trigger_id}"): (
        P.PROJECTS_EDIT,
    ),
    ("POST", "/api/v1/projects/{project_id}/risks/{risk_id}/evaluate"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/{project_id}/retros"): (P.PROJECTS_VIEW,),
    ("POST", "/api/v1/projects/{project_id}/retros"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/{project_id}/retros/{retro_id}"): (P.PROJECTS_VIEW,),
    ("POST", "/api/v1/projects/{project_id}/retros/{retro_id}/actions"): (P.PROJECTS_EDIT,),
    ("GET", "/api/v1/projects/{project_id}/people"): (P.PROJECTS_VIEW,),
    ("GET", "/api/v1/projects/{project_id}/standup"): (P.PROJECTS_VIEW,),
    ("GET", "/api/v1/people"): (P.PROJECTS_VIEW,),
    ("GET", "/api/v1/analytics/kpis"): (P.ANALYTICS_VIEW,),
    ("GET", "/api/v1/analytics/funnel"): (P.ANALYTICS_VIEW,),
    ("GET", "/api/v1/analytics/paths"): (P.ANALYTICS_VIEW,),
    ("GET", "/api/v1/analytics/retention"): (P.ANALYTICS_VIEW,),
    ("GET", "/api/v1/analytics/segments"): (P.ANALYTICS_VIEW,),
    ("GET", "/api/v1/analytics/segments/export.csv"): (P.DATA_EXPORT,),
    ("GET", "/api/v1/analytics/customers/{customer_id}/profile"): (P.ANALYTICS_VIEW,),
    ("GET", "/api/v1/analytics/ltv"): (P.ANALYTICS_VIEW,),
    ("POST", "/api/v1/analytics/ab/analyze"): (P.ANALYTICS_VIEW,),
    ("GET", "/api/v1/analytics/forecasts"): (P.ANALYTICS_VIEW,),
    ("GET", "/api/v1/analytics/channel-roi"): (P.ANALYTICS_VIEW,),
    ("GET", "/api/v1/analytics/channel-spend"): (P.ANALYTICS_VIEW,),
    ("POST", "/api/v1/analytics/channel-spend"): (P.ANALYTICS_EDIT,),
    ("PUT", "/api/v1/analytics/channel-spend/{spend_id}"): (P.ANALYTICS_EDIT,),
    ("DELETE", "/api/v1/analytics/channel-spend/{spend_id}"): (P.ANALYTICS_EDIT,),
    ("POST", "/api/v1/analytics/channel-spend/import"): (P.ANALYTICS_EDIT,),
    ("PUT", "/api/v1/analytics/channel-targets/{channel}"): (P.ANALYTICS_EDIT,),
    ("GET", "/api/v1/analytics/reports/monthly"): (P.ANALYTICS_VIEW,),
    ("GET", "/api/v1/analytics/recommendations/also-joined"): (P.ANALYTICS_VIEW,),
    ("GET", "/api/v1/analytics/recommendations/for-customer/{customer_id}"): (P.ANALYTICS_VIEW,),
}


def api_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from api_routes(inner.routes, prefix + (getattr(context, "prefix", "") or ""))
        elif isinstance(route, APIRoute) and (prefix + route.path).startswith(
            ("/api/", "/sandbox/")
        ):
            for method in route.methods - {"HEAD"}:
                yield method, prefix + route.path


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_api(Path(tmp_path_factory.mktemp("matrix"))) as a:
        yield a


@pytest.fixture(scope="module")
def tokens(api: Api) -> dict[str, str]:
    community = api.community("阳光小区")
    leader = api.leader(community["id"])
    customer = api.customer("张三", community["id"])
    out = {"operator": api.operator}
    for role in Role:
        if role.value == "operator":
            continue
        subject = {"leader": leader["id"], "customer": customer["id"]}.get(role.value)
        out[role.value] = api.token(role.value, subject)
    return out


def test_the_table_covers_every_api_route(api: Api) -> None:
    served = set(api_routes(api.client.app.routes))  # type: ignore[attr-defined]
    assert served == set(ROUTE_PERMS), {
        "not in the table": sorted(served - set(ROUTE_PERMS)),
        "no longer served": sorted(set(ROUTE_PERMS) - served),
    }


GUARDED = sorted((k, v) for k, v in ROUTE_PERMS.items() if v is not None)


@pytest.mark.parametrize("role", [r.value for r in Role])
@pytest.mark.parametrize(("route", "perms"), GUARDED, ids=[" ".join(k) for k, _ in GUARDED])
def test_role_against_api_route(
    api: Api, tokens: dict[str, str], route: tuple[str, str], perms: tuple[Perm, ...], role: str
) -> None:
    method, path = route
    url = re.sub(r"\{[^}]+\}", "unknown-id", path)
    before = api.snapshot()
    response = api.client.request(
        method,
        url,
        json={},
        headers={"Authorization": f"Bearer {tokens[role]}", "Idempotency-Key": f"m-{role}-{path}"},
    )
    may = any(p in MATRIX[Role(role)] for p in perms)
    if may:
        scoped_out = (
            role == "leader"
            and response.status_code == 403
            and "another" in response.json()["detail"]  # a leader's scope, not the matrix
        )
        assert scoped_out or response.status_code not in (401, 403), (role, route, response.text)
    else:
        assert response.status_code == 403, (role, route, response.status_code, response.text)
        assert response.json()["code"] == "forbidden"
    if response.status_code >= 400:  # refused calls (by role or by bad input) change nothing
        assert api.snapshot() == before, (role, route)


def test_only_admins_issue_admin_tokens(api: Api, tokens: dict[str, str]) -> None:
    response = api.client.post(
        "/api/v1/tokens",
        json={"role": "admin"},
        headers={"Authorization": f"Bearer {tokens['operator']}"},
    )
    assert response.status_code == 403
    response = api.client.post(
        "/api/v1/tokens",
        json={"role": "admin", "name": "ops bot"},
        headers={"Authorization": f"Bearer {tokens['admin']}"},
    )
    assert response.status_code == 201


def test_api_changes_by_staff_are_audited_without_secrets(api: Api, tokens: dict[str, str]) -> None:
    from sqlalchemy import select

    from tuan.accounts.store import audit_log

    headers = {"Authorization": f"Bearer {tokens['operator']}"}
    made = api.client.post("/api/v1/communities", json={"name": "审计小区"}, headers=headers)
    assert made.status_code == 201
    hook = api.client.post(
        "/api/v1/webhooks", json={"url": "https://example.com/hook"}, headers=headers
    )
    assert hook.status_code == 201, hook.text
    secret = hook.json()["secret"]
    token = api.client.post("/api/v1/tokens", json={"role": "viewer"}, headers=headers)
    with api.c.db.read() as conn:
        rows = {r.action: r for r in conn.execute(select(audit_log))}
    assert rows["community.create"].entity_id == made.json()["id"]
    assert rows["community.create"].actor_kind == "token"
    assert rows["community.create"].actor_role == "operator"
    assert rows["community.create"].after["name"] == "审计小区"
    dump = str([dict(r._mapping) for r in rows.values()])
    assert secret not in dump and token.json()["token"] not in dump
