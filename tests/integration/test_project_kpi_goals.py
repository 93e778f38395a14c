"""Goals on analytics KPIs (``kpi.<name>``), read from a small event store written in the test:
scope channel and campaign, distinct counts, a lower-is-better KPI, no data, bad scopes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Engine
from tests.integration.kpi_goal_store import count_connects, event, paid_order, write_store
from tuan.accounts import service as accounts
from tuan.projects import goals, retros
from tuan.projects import service as projects
from tuan.projects.tracking_store import project_goals
from tuan.shared.errors import DomainError


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "kpi-goals.db")
    yield e
    e.close()


def _setup(eng: Engine, store: Path) -> dict[str, Any]:
    owner = eng.write(
        lambda c: accounts.create_user(
            c,
            username="pm.kpi",
            password="correct horse battery",
            role="project_manager",
            now=eng.now(),
        )
    )
    sku = eng.add_sku(stock=100)
    camp = eng.add_campaign(sku, group_size=2, price=2990)
    project = eng.write(
        lambda c: projects.create_project(
            c, name="渠道目标", now=eng.now(), key="KG", created_by=owner["id"], campaign_ids=[camp]
        )
    )
    t0 = eng.now()
    day = timedelta(days=1)
    wg, mo = "wechat_group", "moments"
    write_store(
        store,
        [
            event("view", t0 - 9 * day, "c1", channel=wg, campaign=camp),
            event("view", t0 - 9 * day, "c2", channel=wg, campaign=camp),
            event("view", t0 - 2 * day, "c1", channel=wg, campaign=camp),
            event("view", t0 - 1 * day, "c3", channel=wg, campaign="other"),
        ],
        [
            paid_order("o1", "c1", t0 - 9 * day, 10_000, channel=wg, campaign=camp),
            paid_order("o2", "c2", t0 - 5 * day, 10_000, channel=wg, campaign=camp, refunded=3000),
            paid_order("o3", "c3", t0 - 1 * day, 20_000, channel=wg, campaign="other"),
            paid_order("o4", "c4", t0 - 2 * day, 50_000, channel=mo, campaign="other"),
            paid_order("o0", "c4", t0 - 30 * day, 99_000, channel=mo, campaign="other"),
        ],
    )
    return {"project": str(project["id"]), "campaign": camp, "t0": t0}


def _goal(eng: Engine, s: dict[str, Any], store: Path | None, **kw: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "目标",
        "starts_at": s["t0"] - timedelta(days=10),
        "deadline_at": s["t0"] + timedelta(days=10),
        **kw,
    }
    with goals.open_store(store) as kpi:
        return eng.write(
            lambda c: goals.create_goal(c, s["project"], now=eng.now(), store=kpi, **values)
        )


def _progress(eng: Engine, goal: dict[str, Any], store: Path | None) -> dict[str, Any]:
    with goals.open_store(store) as kpi:
        return eng.read(lambda c: goals.goal_progress(c, goal, eng.now(), store=kpi))


def test_gmv_of_a_channel_is_cumulative_and_exact(eng: Engine, tmp_path: Path) -> None:
    store = tmp_path / "analytics"
    s = _setup(eng, store)
    goal = _goal(eng, s, store, metric="kpi.gmv", target=76_000, scope_kind="channel",
                 scope_id="wechat_group")  # fmt: skip
    p = _progress(eng, goal, store)
    # wechat_group since the start (10 days ago): o1 10 000 + o2 10 000 + o3 20 000 (o4 is
    # moments, o0 before the start). The last 7 days brought o2 + o3 = 30 000.
    assert p["source"] == "analytics:orders" and p["unit"] == "cents"
    assert p["actual"] == 40_000
    assert sum(x["value"] or 0 for x in p["trend"]) == 40_000
    assert p["expected"] == pytest.approx(38_000)  # half-way along the path to 76 000
    assert p["forecast"] == pytest.approx(40_000 + 30_000 / 7 * 10)
    assert (p["status"], p["reason"]) == ("on_track", "on_path")
    everything = _progress(eng, _goal(eng, s, store, metric="kpi.gmv", target=76_000), store)
    assert everything["actual"] == 90_000  # + o4 50 000 of moments


def test_distinct_counts_forecast_by_their_growth(eng: Engine, tmp_path: Path) -> None:
    store = tmp_path / "analytics"
    s = _setup(eng, store)
    goal = _goal(eng, s, store, metric="kpi.uv", target=6, scope_kind="channel",
                 scope_id="wechat_group")  # fmt: skip
    p = _progress(eng, goal, store)
    # c1, c2 (day −9), c1 again (−2), c3 (−1): 3 people; 2 of them were seen before the last
    # 7 days, so the count grew by 1 in 7 days: 3 + 1/7 × 10 days left.
    assert p["actual"] == 3
    assert p["forecast"] == pytest.approx(3 + 10 / 7)
    # On the path (3 of 6 at half-time), but the forecast misses 6: at risk.
    assert (p["status"], p["reason"]) == ("at_risk", "slowing")


def test_a_lower_is_better_kpi_of_a_campaign(eng: Engine, tmp_path: Path) -> None:
    store = tmp_path / "analytics"
    s = _setup(eng, store)
    camp = {"scope_kind": "campaign", "scope_id": s["campaign"]}
    # The campaign's orders: o1 10 000, o2 10 000 with 3 000 refunded: refund rate 15 %.
    loose = _progress(eng, _goal(eng, s, store, metric="kpi.refund_rate", target=0.3, **camp),
                      store)  # fmt: skip
    assert loose["actual"] == pytest.approx(0.15) and loose["lower_is_better"] is True
    # Under the ceiling of 30 %, and so is the last 7 days' rate (3 000 / 10 000 = 30 %).
    assert loose["status"] == "on_track" and loose["forecast"] == pytest.approx(0.3)
    tight = _progress(eng, _goal(eng, s, store, metric="kpi.refund_rate", target=0.1, **camp),
                      store)  # fmt: skip
    # 15 % is over 10 % ÷ 0.9 = 11.1 %, and so is the last 7 days' rate (3 000 / 10 000).
    assert tight["forecast"] == pytest.approx(0.3)
    assert (tight["status"], tight["reason"]) == ("off_track", "far_above")
    near = _progress(eng, _goal(eng, s, store, metric="kpi.refund_rate", target=0.14, **camp),
                     store)  # fmt: skip
    assert (near["status"], near["reason"]) == ("at_risk", "above_target")  # 15 % ≤ 15.6 %


def test_no_store_or_no_rows_is_no_data(eng: Engine, tmp_path: Path) -> None:
    store = tmp_path / "analytics"
    s = _setup(eng, store)
    goal = _goal(eng, s, store, metric="kpi.gmv", target=10_000)
    missing = _progress(eng, goal, tmp_path / "nowhere")
    assert (missing["status"], missing["reason"], missing["actual"]) == ("at_risk", "no_data", None)
    assert _progress(eng, goal, None)["reason"] == "no_data"
    # moments has orders but no events: a conversion goal on it has nothing to read.
    conv = _goal(eng, s, store, metric="kpi.conversion_rate", target=0.5, scope_kind="channel",
                 scope_id="moments")  # fmt: skip
    p = _progress(eng, conv, store)
    assert (p["status"], p["reason"], p["actual"]) == ("at_risk", "no_data", None)
    # The retro snapshot reads KPI goals from the same store.
    retro = eng.write(
        lambda c: retros.create_retro(
            c, s["project"], title="复盘", now=eng.now(), analytics_dir=store
        )
    )
    snap = {g["goal_id"]: g for g in retro["kpi_snapshot"]["goals"]}
    assert snap[goal["id"]]["actual"] == 90_000 and snap[conv["id"]]["status"] == "at_risk"


@pytest.mark.parametrize(
    "kw,store_name,detail",
    [
        ({"metric": "gmv_cents", "scope_kind": "channel", "scope_id": "wechat_group"},
         "analytics", "use an analytics KPI metric"),
        ({"metric": "kpi.gmv", "scope_kind": "channel", "scope_id": "tiktok"},
         "analytics", "'tiktok' has never been seen in the analytics store (seen: moments,"
         " wechat_group)"),
        ({"metric": "kpi.gmv", "scope_kind": "channel", "scope_id": "wechat_group"},
         "nowhere", "no channel seen yet"),
        ({"metric": "kpi.gmv", "scope_kind": "channel", "scope_id": "we chat"},
         "analytics", "channel code"),
        ({"metric": "kpi.gmv", "scope_kind": "channel"}, "analytics", "channel code"),
        ({"metric": "kpi.nope"}, "analytics", "or an analytics KPI"),
        ({"metric": "kpi.refund_rate", "target": 15}, "analytics", "fraction between 0 and 1"),
        ({"metric": "kpi.aov", "target": 12.5}, "analytics", "whole number"),
    ],
)  # fmt: skip
def test_bad_goals_are_refused_and_change_nothing(
    eng: Engine, tmp_path: Path, kw: dict[str, Any], store_name: str, detail: str
) -> None:
    store = tmp_path / "analytics"
    s = _setup(eng, store)
    before = eng.count(project_goals)
    with pytest.raises(DomainError) as err:
        _goal(eng, s, tmp_path / store_name, **{"target": 1000, **kw})
    assert err.value.code == "projects.goal_invalid"
    assert detail in err.value.params["detail"]
    assert eng.count(project_goals) == before


def test_a_retro_reads_every_kpi_goal_through_one_store_connection(
    eng: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "analytics"
    s = _setup(eng, store)
    made = [
        _goal(eng, s, store, metric="kpi.gmv", target=76_000),
        _goal(eng, s, store, metric="kpi.uv", target=6, scope_kind="channel",
              scope_id="wechat_group"),
        _goal(eng, s, store, metric="kpi.refund_rate", target=0.3, scope_kind="campaign",
              scope_id=s["campaign"]),
        _goal(eng, s, store, metric="gmv_cents", target=100_000),
    ]  # fmt: skip
    alone = {g["id"]: _progress(eng, g, store) for g in made}  # each goal on its own store
    opened = count_connects(monkeypatch)
    retro = eng.write(
        lambda c: retros.create_retro(
            c, s["project"], title="复盘", now=eng.now(), analytics_dir=store
        )
    )
    assert len(opened) == 1
    snap = {g["goal_id"]: g for g in retro["kpi_snapshot"]["goals"]}
    assert snap[made[0]["id"]]["actual"] == 90_000 and snap[made[1]["id"]]["actual"] == 3
    for goal_id, p in alone.items():
        assert (snap[goal_id]["actual"], snap[goal_id]["status"]) == (p["actual"], p["status"])
    # a project whose goals are all the engine's does not open the store at all
    eng.write(lambda c: [goals.delete_goal(c, s["project"], str(g["id"])) for g in made[:3]])
    eng.write(lambda c: retros.create_retro(c, s["project"], title="二", now=eng.now(),
                                            analytics_dir=store))  # fmt: skip
    assert len(opened) == 1
