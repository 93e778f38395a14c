"""/api/v1/analytics/…: the same data as the console, problem documents for bad input, the
permission matrix's analytics rows by role, the export audited, and the OpenAPI document."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.console.analytics_helpers import Site, served
from tests.e2e.api_helpers import assert_problem
from tuan.accounts.store import audit_log
from tuan.analytics import event_store
from tuan.catalog.store import skus
from tuan.communities.store import customers

A = "/api/v1/analytics"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served(Path(tmp_path_factory.mktemp("analytics-api")), demo=True) as s:
        yield s


@pytest.fixture(scope="module")
def tokens(site: Site) -> dict[str, str]:
    with site.c.db.read() as conn:
        customer_id = conn.execute(select(customers.c.id).limit(1)).scalar_one()
    out = {role: site.token(role) for role in ("analyst", "viewer", "operator")}
    out["customer"] = site.token("customer", customer_id)
    return out


def get(site: Site, token: str, path: str, **kw: Any) -> Any:
    return site.client.get(A + path, headers={"Authorization": f"Bearer {token}"}, **kw)


def audits(site: Site) -> int:
    with site.c.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())


def direct(site: Site, sql: str) -> Any:
    con = event_store.connect(event_store.analytics_dir_for(site.c.settings))
    try:
        row = con.execute(sql).fetchone()
        assert row is not None
        return row[0]
    finally:
        con.close()


def test_kpis_by_day_sum_to_the_order_facts(site: Site, tokens: dict[str, str]) -> None:
    r = get(site, tokens["viewer"], "/kpis?start=2026-07-27&end=2026-08-01&kpi=gmv&kpi=paid_orders")
    assert r.status_code == 200, r.text
    body = r.json()
    gmv = sum(x["value"] for x in body["rows"] if x["kpi"] == "gmv")
    orders = sum(x["value"] for x in body["rows"] if x["kpi"] == "paid_orders")
    window = (
        "paid_at >= TIMESTAMPTZ '2026-07-26 16:00:00+00'"
        " AND paid_at < TIMESTAMPTZ '2026-08-01 16:00:00+00'"
    )
    assert gmv == direct(site, f"SELECT sum(amount_cents) FROM order_facts WHERE {window}") > 0
    assert orders == direct(site, f"SELECT count(*) FROM order_facts WHERE {window}")
    assert [x["period"] for x in body["latest"]] == ["2026-08-01", "2026-08-01"]
    assert {d["name"] for d in body["definitions"]} == {"gmv", "paid_orders"}
    by = get(site, tokens["viewer"], "/kpis?by=community&kpi=buyers&grain=week").json()
    assert by["by"] == "community" and any(x["key"] for x in by["rows"])


def test_funnel_paths_and_retention(site: Site, tokens: dict[str, str]) -> None:
    t = tokens["analyst"]
    f = get(site, t, "/funnel?step=open_group&step=join&step=pay&breakdown=community").json()
    reached = [s["reached"] for s in f["total"]]
    assert reached[0] > 0 and reached == sorted(reached, reverse=True)
    assert sum(x["steps"][0]["reached"] for x in f["by_key"]) == reached[0]
    p = get(site, t, "/paths?step=join&step=pay&step=refund").json()
    assert p["left"] <= p["entered"] and p["last_events"]
    ret = get(site, t, "/retention?grain=day&cohort=join").json()
    assert ret["cohorts"] and all(c["counts"][0] == c["size"] for c in ret["cohorts"])


def test_segments_profile_and_export(site: Site, tokens: dict[str, str]) -> None:
    seg = get(site, tokens["viewer"], "/segments?stage=new").json()
    assert seg["segment_size"] == seg["lifecycle"]["new"] > 0
    assert sum(seg["rfm"]["r"].values()) == seg["scored_customers"]
    profile = get(site, tokens["viewer"], f"/customers/{seg['segment_sample'][0]}/profile")
    assert profile.status_code == 200 and profile.json()["stage"] == "new"
    assert_problem(get(site, tokens["viewer"], "/customers/nobody/profile"), 404, "not_found")
    before = audits(site)
    assert_problem(get(site, tokens["viewer"], "/segments/export.csv?stage=new"), 403, "forbidden")
    assert audits(site) == before
    r = get(site, tokens["analyst"], "/segments/export.csv?stage=new")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == seg["segment_size"]
    assert audits(site) == before + 1


def test_ltv(site: Site, tokens: dict[str, str]) -> None:
    r = get(site, tokens["viewer"], "/ltv?horizon_weeks=12&top=5")
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["top"]) == 5 and body["repeat_customers"] >= 2
    values = [x["expected_value_cents"] for x in body["top"]]
    assert values == sorted(values, reverse=True)
    assert all(0 <= x["p_alive"] <= 1 for x in body["top"])
    early = get(site, tokens["viewer"], "/ltv?calibration_end=2026-07-27")
    assert_problem(early, 422, "analytics_no_data")


def test_ab_analyze_json_and_csv(site: Site, tokens: dict[str, str]) -> None:
    h = {"Authorization": f"Bearer {tokens['viewer']}"}
    body = {
        "variants": [
            {"variant": "A", "units": 1000, "conversions": 100},
            {"variant": "B", "units": 1000, "conversions": 130},
        ]
    }
    r = site.client.post(A + "/ab/analyze", json=body, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["control"] == "A" and not out["srm_mismatch"]
    assert out["variants"][0]["metrics"]["conversion"]["lift"] == pytest.approx(0.3)
    text = (
        "variant,units,conversions,revenue_sum,revenue_sum_squares\n"
        "A,1000,100,0,0\nB,1400,100,0,0\n"
    )
    r = site.client.post(
        A + "/ab/analyze?weights=50,50",
        content=text.encode(),
        headers={**h, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200 and r.json()["srm_mismatch"] is True
    bad = site.client.post(A + "/ab/analyze", json={"variants": [body["variants"][0]]}, headers=h)
    assert_problem(bad, 422, "analytics_invalid")
    bad = site.client.post(
        A + "/ab/analyze",
        content=b"variant,units\nA,1\n",
        headers={**h, "Content-Type": "text/csv"},
    )
    assert_problem(bad, 422, "analytics_invalid")
    assert_problem(
        site.client.post(A + "/ab/analyze", content=b"{", headers=h), 400, "malformed_body"
    )


def test_forecasts_and_recommendations(site: Site, tokens: dict[str, str]) -> None:
    t = tokens["viewer"]
    with site.c.db.read() as conn:
        sku_id = conn.execute(select(skus.c.id).limit(1)).scalar_one()
        customer_id = conn.execute(select(customers.c.id).limit(1)).scalar_one()
    r = get(site, t, f"/forecasts?sku_id={sku_id}&horizon=7&service_level=0.9")
    assert r.status_code == 200, r.text
    fc = r.json()
    assert len(fc["forecast"]) == 7
    assert all(d["low_95"] <= d["low_80"] <= d["high_80"] <= d["high_95"] for d in fc["forecast"])
    assert fc["reorder"]["service_level"] == 0.9 and fc["reorder"]["quantity"] >= 0
    assert_problem(get(site, t, "/forecasts?sku_id=nope"), 404, "not_found")
    picks = get(site, t, f"/recommendations/for-customer/{customer_id}?k=5").json()
    assert picks["customer_id"] == customer_id and len(picks["picks"]) <= 5
    product = picks["picks"][0]["product_id"] if picks["picks"] else None
    if product is None:
        with site.c.db.read() as conn:
            from tuan.catalog.store import products

            product = conn.execute(select(products.c.id).limit(1)).scalar_one()
    also = get(site, t, f"/recommendations/also-joined?product_id={product}").json()
    assert also["items"][0]["product_id"] == product
    assert_problem(get(site, t, "/recommendations/also-joined"), 422, "analytics_invalid")
    assert_problem(get(site, t, "/recommendations/for-customer/nobody"), 404, "not_found")


BAD = [
    "/kpis?start=2026-02-30",
    "/kpis?start=2026-08-01&end=2026-07-01",
    "/kpis?grain=year",
    "/kpis?by=planet",
    "/kpis?kpi=happiness",
    "/funnel?step=view",
    "/funnel?step=view&step=pay&window_days=0",
    "/funnel?step=view&step=pay&breakdown=campaign",
    "/paths?step=view&step=pay&top=0",
    "/retention?cohort=view",
    "/segments?new_days=90&active_days=10",
    "/segments?r_min=6",
    "/ltv?horizon_weeks=-1",
    "/forecasts?sku_id=x&service_level=1.5",
    "/recommendations/also-joined?product_id=a&campaign_id=b",
]


@pytest.mark.parametrize("path", BAD)
def test_bad_input_is_a_problem_document_in_the_callers_language(
    site: Site, tokens: dict[str, str], path: str
) -> None:
    before = audits(site)
    assert_problem(get(site, tokens["analyst"], path), 422, "analytics_invalid")
    r = site.client.get(
        A + path, headers={"Authorization": f"Bearer {tokens['analyst']}", "Accept-Language": "en"}
    )
    assert_problem(r, 422, "analytics_invalid", english=True)
    assert audits(site) == before


def test_customers_and_missing_tokens_are_refused(site: Site, tokens: dict[str, str]) -> None:
    for path in ("/kpis", "/segments", "/ltv", "/recommendations/also-joined?product_id=x"):
        assert_problem(get(site, tokens["customer"], path), 403, "forbidden")
        assert_problem(site.client.get(A + path), 401, "unauthenticated")
    # The permission is checked before the query is: a bad filter from a customer is still 403.
    for path in ("/segments?r_min=9", "/segments/export.csv?new_days=x"):
        assert_problem(get(site, tokens["customer"], path), 403, "forbidden")
        assert_problem(site.client.get(A + path), 401, "unauthenticated")
    r = site.client.post(
        A + "/ab/analyze", json={}, headers={"Authorization": f"Bearer {tokens['customer']}"}
    )
    assert_problem(r, 403, "forbidden")


def test_openapi_documents_every_analytics_route(site: Site) -> None:
    doc = site.client.get("/openapi.json").json()
    paths = doc["paths"]
    for path in (
        "/kpis",
        "/funnel",
        "/paths",
        "/retention",
        "/segments",
        "/segments/export.csv",
        "/customers/{customer_id}/profile",
        "/ltv",
        "/ab/analyze",
        "/forecasts",
        "/recommendations/also-joined",
        "/recommendations/for-customer/{customer_id}",
    ):
        assert A + path in paths, path
    schemas = doc["components"]["schemas"]
    for name in ("KpisOut", "FunnelOut", "SegmentsOut", "LtvOut", "AbOut", "ForecastOut"):
        assert name in schemas
    body = paths[A + "/ab/analyze"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/csv"} <= set(body)
    assert "422" in paths[A + "/kpis"]["get"]["responses"]
