"""The compiled funnel match (``tuan.analytics.funnel_match``, ADR 0014) gives the answers of
the funnel's definition: checked against a plain Python match on random rows, against DuckDB's
``quantile_cont`` for the times to convert, and, through ``funnels.funnel``, against the exact
SQL statement on random event logs with repeated types, filters and ties."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from tests.unit.test_funnels import reached
from tests.unit.test_kpis import make_views, sh
from tuan.analytics import funnel_match as fm
from tuan.analytics import funnels
from tuan.analytics.funnels import FunnelStep

NEVER = fm.NEVER


def _reference(
    rows: list[tuple[int, int, int, int]], strict: list[bool], w: int
) -> dict[int, tuple[list[int], int, bool]]:
    """Per person: the step instants (NEVER past the last reached), the entry's hash and
    whether the entry instant is tied between different hashes — by the definition."""
    out: dict[int, tuple[list[int], int, bool]] = {}
    n = len(strict)
    for person in {r[0] for r in rows if r[3] & 1}:
        mine = [r for r in rows if r[0] == person]
        t1 = min(r[1] for r in mine if r[3] & 1)
        at = {r[2] for r in mine if r[3] & 1 and r[1] == t1}
        times = [t1] + [NEVER] * (n - 1)
        for k in range(1, n):
            prev = times[k - 1]
            if prev == NEVER:
                break
            ok = [
                r[1]
                for r in mine
                if r[3] >> k & 1 and (r[1] > prev if strict[k] else r[1] >= prev) and r[1] <= t1 + w
            ]
            times[k] = min(ok) if ok else NEVER
        dh = min(at) if len(at) == 1 else -1
        out[person] = (times, dh, len(at) > 1)
    return out


def _random_rows(rng: random.Random, n: int, people: int, nsteps: int) -> list[tuple[int, ...]]:
    rows = []
    for _ in range(n):
        mask = 0
        while mask == 0:  # most rows fill one step, some several
            mask = (1 << rng.randrange(nsteps)) | (rng.random() < 0.15) << rng.randrange(nsteps)
        person = rng.randrange(people) * 0x9E3779B97F4A7C15 % (1 << 64)  # spread like a hash
        rows.append((person, rng.randrange(200), rng.choice([11, 22, 33]), mask))
    return rows


def _as_sources(rows: list[tuple[int, ...]]) -> list[fm.Source]:
    """The rows as two sources (the entry rows apart), as ``funnels`` passes them."""
    first = [r for r in rows if r[3] & 1]
    rest = [r for r in rows if r[3] & ~1]
    return [
        (
            np.array([r[0] for r in first], np.uint64),
            np.array([r[1] for r in first], np.int64),
            np.array([r[2] for r in first], np.uint64),
            np.ones(len(first), np.uint32),
        ),
        (
            np.array([r[0] for r in rest], np.uint64),
            np.array([r[1] for r in rest], np.int64),
            np.zeros(0, np.uint64),
            np.array([r[3] & ~1 for r in rest], np.uint32),
        ),
    ]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("partition_rows", [fm._PART_ROWS, 3])  # one partition, then many
@pytest.mark.parametrize("threads", [True, False])
def test_the_match_is_the_definition(
    monkeypatch: pytest.MonkeyPatch, seed: int, partition_rows: int, threads: bool
) -> None:
    rng = random.Random(seed)
    nsteps = rng.choice([2, 3, 4, 5])
    strict = [False] + [rng.random() < 0.4 for _ in range(nsteps - 1)]
    rows = _random_rows(rng, 600, 90, nsteps)
    w = rng.choice([0, 15, 60, 1000])
    monkeypatch.setattr(fm, "_PART_ROWS", partition_rows)
    if not threads:
        monkeypatch.setattr(fm, "_pool", lambda: None)
    got = fm.match(_as_sources(rows), strict, w)
    want = _reference(rows, strict, w)
    # the people come out grouped by partition, without their keys: compared as a multiset
    assert len(got.times) == len(want)
    got_rows = sorted(
        (got.times[i].tolist(), -1 if got.tie[i] else int(got.dims[i]), bool(got.tie[i]))
        for i in range(len(got.times))
    )
    assert got_rows == sorted(want.values())
    assert any(t[1] != NEVER for t, _, _ in want.values())  # some people got past step 1


def test_an_empty_match() -> None:
    empty = (
        np.zeros(0, np.uint64),
        np.zeros(0, np.int64),
        np.zeros(0, np.uint64),
        np.zeros(0, np.uint32),
    )
    m = fm.match([empty, empty], [False, False, True], 10)
    assert m.times.shape == (0, 3) and len(m.dims) == 0 and len(m.tie) == 0


def test_step_counts_are_checked() -> None:
    empty = (np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.uint64))
    with pytest.raises(ValueError, match="1 to 32 steps"):
        fm.match([(*empty, np.zeros(0, np.uint32))], [False] * 33, 10)


def test_factorize() -> None:
    values = np.array([7, 3, 7, 2**64 - 1, 3, 0, 7], np.uint64)
    codes, uniques = fm.factorize(values)
    assert uniques.tolist() == [7, 3, 2**64 - 1, 0]
    assert codes.tolist() == [0, 1, 0, 2, 1, 3, 0]
    assert fm.factorize(np.zeros(0, np.uint64))[1].tolist() == []


@pytest.mark.parametrize("seed", range(5))
def test_step_quantiles_are_duckdbs_quantile_cont(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m, nsteps, groups = int(rng.integers(1, 400)), 3, int(rng.integers(1, 6))
    times = np.full((m, nsteps), NEVER, np.int64)
    times[:, 0] = rng.integers(0, 10**9, m)
    for k in range(1, nsteps):  # some people stop; many equal gaps (ties in the values)
        reached = (times[:, k - 1] != NEVER) & (rng.random(m) < 0.8)
        gap = rng.choice([0, 1_000_000, 2_500_000, int(rng.integers(0, 10**8))], m)
        times[reached, k] = times[reached, k - 1] + gap[reached]
    codes = rng.integers(0, groups, m).astype(np.int64)
    qs = [0.9, 0.0, 0.5, 1.0, 0.337]
    out = fm.step_quantiles(times, codes, groups, qs)
    con = duckdb.connect()
    for k in range(1, nsteps):
        r = times[:, k] != NEVER
        dp = (times[r, k] - times[r, k - 1]) / 1e6
        ds = (times[r, k] - times[r, 0]) / 1e6
        for g in [*range(groups), groups]:
            sel = np.ones(int(r.sum()), bool) if g == groups else codes[r] == g
            assert out[k, g, 0] == sel.sum()
            if not sel.any():
                assert np.isnan(out[k, g, 1:]).all()
                continue
            for col, values in ((1, dp[sel]), (1 + len(qs), ds[sel])):
                want = con.execute(
                    "SELECT quantile_cont(x, ?::DOUBLE[]) FROM (SELECT unnest(?::DOUBLE[]) x)",
                    [qs, values.tolist()],
                ).fetchone()[0]
                got = out[k, g, col : col + len(qs)].tolist()
                assert got == pytest.approx(want, rel=1e-12, abs=1e-9)


# The whole funnel: the compiled match against the exact statement (``_funnel_ctes``, which
# breaks ties by event id), on random logs.

TYPES = ["view", "add_to_cart", "join", "pay"]


def _log(rng: random.Random, tick: timedelta) -> list[dict[str, Any]]:
    start = sh("2024-03-01 00:00")
    return [
        {
            "event_id": f"x{i:04d}",
            "type": rng.choice(TYPES),
            "occurred_at": start + tick * rng.randrange(int(timedelta(days=12) / tick)),
            "customer_id": f"c{rng.randrange(25)}" if rng.random() < 0.85 else None,
            "anonymous_id": f"a{rng.randrange(15)}",
            "channel": rng.choice(["wechat", "douyin", "share", None]),
            "campaign_id": rng.choice(["K1", "K2"]),
        }
        for i in range(500)
    ]


def _answer(f: funnels.Funnel) -> Any:
    def cells(rows: list[funnels.FunnelStepResult]) -> list[Any]:
        return [(r.reached, r.seconds_from_previous, r.seconds_from_start) for r in rows]

    return cells(f.total), {k: cells(v) for k, v in f.by_key.items()}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=hst.integers(0, 10_000),
    steps=hst.lists(
        hst.tuples(hst.sampled_from(TYPES), hst.sampled_from([None, "K1", "wechat"])),
        min_size=2,
        max_size=5,
    ),
    window_h=hst.sampled_from([0, 1, 30, 24 * 7]),
    breakdown=hst.sampled_from([None, "channel", "campaign"]),
    tick_s=hst.sampled_from([60, 1]),
)
def test_the_compiled_funnel_is_the_exact_statement(
    seed: int,
    steps: list[tuple[str, str | None]],
    window_h: int,
    breakdown: str | None,
    tick_s: int,
) -> None:
    rng = random.Random(seed)
    con = make_views(_log(rng, timedelta(seconds=tick_s)), [])
    st = [
        FunnelStep(t, {} if f is None else {"campaign_id" if f == "K1" else "channel": f})
        for t, f in steps
    ]
    args: dict[str, Any] = {
        "start": date(2024, 3, 2),
        "end": date(2024, 3, 9),
        "window": timedelta(hours=window_h),
        "breakdown": breakdown,
        "percentiles": (0.5, 0.9, 0.1),
    }
    compiled = funnels.funnel(con, st, **args)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(funnels, "_matched_rows", lambda *a, **k: None)  # the exact statement
        exact = funnels.funnel(con, st, **args)
    assert reached(compiled.total) == reached(exact.total)
    assert _close(_answer(compiled), _answer(exact))


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to 12 significant digits (the two paths interpolate the same order
    statistics; the last bit may differ)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
