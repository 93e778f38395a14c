"""Channel ROI on a small hand-made business; every figure is worked out here.

Times are Shanghai local (UTC+8). Spend entries:

  wechat_group  2024-06-25 … 07-04 (10 days)  ¥10.03 = 1003 cents: 100 a day, the 3 cents
                left over one each to the first 3 days → 25,26,27 Jun: 101; the rest: 100.
                June holds 25–30 (6 days) = 3×101 + 3×100 = 603; July 1–4 = 400.
  moments       2024-07-01 … 07-31   3100 cents → July 3100 (100 a day)
  leader_share  2024-07-10 … 07-10    500 cents → July 500; its own target ROI is 1.0

order_facts (amount / refunded, cents):

  o5 c3 direct        700 /    0  paid 06-20 10:00           June; c3's first purchase
  o1 c1 wechat_group 2000 /    0  paid 07-01 00:30 (06-30 16:30 UTC: July in Shanghai);
                                   c1's first purchase
  o2 c1 moments      1000 /    0  paid 07-02 12:00
  o3 c2 moments      1500 / 1500  paid 07-03, refunded in full: net 0, not a purchase
  o4 c2 moments       900 /  100  paid 07-05; c2's first purchase (o3 was refunded)
  o6 c3 wechat_group  400 /    0  paid 07-20 (c3 bought in June already)
  o7 c4 leader_share  300 /    0  paid 07-31 23:59; c4's first purchase
  o8 c5 moments      5000 /    0  paid 08-01 00:10 (07-31 16:10 UTC: August in Shanghai)
  o9 c6 moments       999         never paid: ignored

July: wechat_group spend 400, GMV 2400, net 2400, 2 orders, 1 new buyer (c1):
      ROI 2400/400 = 6.0, CAC 400;
      moments spend 3100, GMV 3400, net 1000 + 0 + 800 = 1800, 3 orders, 1 new buyer (c2):
      ROI 1800/3100 ≈ 0.58 < 3 → flagged, CAC 3100;
      leader_share spend 500, GMV = net = 300: ROI 0.6 < its own 1.0 → flagged.
June: direct GMV 700, no spend → no ROI, not flagged; wechat_group spend 603 and nothing
      sold → ROI 0.0, flagged, no CAC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.unit.test_kpis import make_views
from tuan.analytics.channel_roi import SpendPart, channel_roi, daily_spend, period_bounds, totals
from tuan.analytics.kpis import KpiInputError

SH = ZoneInfo("Asia/Shanghai")


def sh(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SH).astimezone(UTC)


def order(oid: str, cust: str, channel: str, amount: int, refunded: int, paid: str | None,
          status: str = "paid") -> dict[str, Any]:  # fmt: skip
    return {
        "order_id": oid,
        "customer_id": cust,
        "channel": channel,
        "amount_cents": amount,
        "refunded_cents": refunded,
        "status": status,
        "paid_at": sh(paid) if paid else None,
        "created_at": sh(paid) if paid else sh("2024-07-09 09:00"),
    }


ORDERS = [
    order("o5", "c3", "direct", 700, 0, "2024-06-20 10:00"),
    order("o1", "c1", "wechat_group", 2000, 0, "2024-07-01 00:30"),
    order("o2", "c1", "moments", 1000, 0, "2024-07-02 12:00"),
    order("o3", "c2", "moments", 1500, 1500, "2024-07-03 12:00", status="refunded"),
    order("o4", "c2", "moments", 900, 100, "2024-07-05 12:00"),
    order("o6", "c3", "wechat_group", 400, 0, "2024-07-20 12:00"),
    order("o7", "c4", "leader_share", 300, 0, "2024-07-31 23:59"),
    order("o8", "c5", "moments", 5000, 0, "2024-08-01 00:10"),
    order("o9", "c6", "moments", 999, 0, None, status="cancelled"),
]
SPEND = [
    SpendPart("wechat_group", date(2024, 6, 25), date(2024, 7, 4), 1003),
    {
        "channel": "moments",
        "period_start": date(2024, 7, 1),
        "period_end": date(2024, 7, 31),
        "amount_cents": 3100,
    },
    SpendPart("leader_share", date(2024, 7, 10), date(2024, 7, 10), 500),
]


@pytest.fixture()
def con() -> Any:
    c = make_views([], ORDERS)
    yield c
    c.close()


def test_spend_is_spread_over_its_days_in_whole_cents() -> None:
    days = daily_spend(SPEND[0])  # type: ignore[arg-type]
    assert len(days) == 10 and sum(days.values()) == 1003
    assert [days[date(2024, 6, d)] for d in (25, 26, 27, 28, 29, 30)] == [101] * 3 + [100] * 3
    assert all(days[date(2024, 7, d)] == 100 for d in (1, 2, 3, 4))


def test_monthly_roi_worked_by_hand(con: Any) -> None:
    rows = channel_roi(
        con, SPEND, start="2024-06-01", end="2024-08-01", grain="month",
        target=3.0, targets={"leader_share": 1.0},
    )  # fmt: skip
    got = {(r.period, r.channel): r for r in rows}
    assert sorted(got) == [
        (date(2024, 6, 1), "direct"),
        (date(2024, 6, 1), "wechat_group"),
        (date(2024, 7, 1), "leader_share"),
        (date(2024, 7, 1), "moments"),
        (date(2024, 7, 1), "wechat_group"),
    ]
    w = got[(date(2024, 7, 1), "wechat_group")]
    assert (w.spend_cents, w.gmv_cents, w.net_revenue_cents, w.orders, w.new_buyers) == (
        400, 2400, 2400, 2, 1,
    )  # fmt: skip
    assert w.roi == pytest.approx(6.0) and w.cac_cents == pytest.approx(400.0)
    assert not w.flagged and w.period_end == date(2024, 8, 1)
    m = got[(date(2024, 7, 1), "moments")]
    assert (m.spend_cents, m.gmv_cents, m.net_revenue_cents, m.orders, m.new_buyers) == (
        3100, 3400, 1800, 3, 1,
    )  # fmt: skip
    assert m.roi == pytest.approx(1800 / 3100) and m.flagged and m.target == 3.0
    ls = got[(date(2024, 7, 1), "leader_share")]
    assert ls.roi == pytest.approx(0.6) and ls.target == 1.0 and ls.flagged
    d = got[(date(2024, 6, 1), "direct")]
    assert (d.spend_cents, d.gmv_cents, d.new_buyers, d.roi, d.flagged) == (0, 700, 1, None, False)
    wj = got[(date(2024, 6, 1), "wechat_group")]
    assert (wj.spend_cents, wj.orders, wj.roi, wj.cac_cents, wj.flagged) == (
        603,
        0,
        0.0,
        None,
        True,
    )
    july = totals(rows)[date(2024, 7, 1)]
    assert july["spend_cents"] == 4000 and july["gmv_cents"] == 6100
    assert july["roi"] == pytest.approx((2400 + 1800 + 300) / 4000)


def test_a_date_range_prorates_the_spend_it_cuts(con: Any) -> None:
    # 28 Jun – 2 Jul (end exclusive): wechat 5 days × 100, moments 2 days × 100.
    rows = channel_roi(con, SPEND, start=date(2024, 6, 28), end=date(2024, 7, 3), grain="range")
    got = {r.channel: r for r in rows}
    assert set(got) == {"wechat_group", "moments"}
    assert got["wechat_group"].spend_cents == 500 and got["wechat_group"].roi == pytest.approx(4.0)
    assert got["wechat_group"].new_buyers == 1  # c1's first purchase, 1 Jul
    assert got["moments"].spend_cents == 200 and got["moments"].roi == pytest.approx(5.0)
    assert got["moments"].new_buyers == 0  # c2's first purchase is on 5 Jul
    assert all(r.period == date(2024, 6, 28) and r.period_end == date(2024, 7, 3) for r in rows)


def test_days_follow_the_time_zone(con: Any) -> None:
    # o1 was paid at 16:30 UTC on 30 June: 1 July in Shanghai, 30 June in UTC.
    sh_day = channel_roi(con, [], start="2024-07-01", end="2024-07-02", grain="day")
    utc_day = channel_roi(con, [], start="2024-07-01", end="2024-07-02", grain="day", tz="UTC")
    assert [(r.channel, r.gmv_cents) for r in sh_day] == [("wechat_group", 2000)]
    assert utc_day == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grain": "year"}, "unknown grain"),
        ({"start": "2024-07-02", "end": "2024-07-01"}, "must be after"),
        ({"target": 0.0}, "target ROI"),
        ({"tz": "Mars/Olympus"}, "time zone"),
        ({"start": "July"}, "not a date"),
    ],
)
def test_bad_requests_are_refused(con: Any, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"start": "2024-07-01", "end": "2024-08-01", **kwargs}
    with pytest.raises(KpiInputError, match=message):
        channel_roi(con, SPEND, **args)


def test_week_periods_are_whole_weeks() -> None:
    assert period_bounds("2024-07-03", "2024-07-05", "week") == [
        (date(2024, 7, 1), date(2024, 7, 8))
    ]
