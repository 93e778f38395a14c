"""How good are the formation odds? A time-split calibration on a database's own history.

Fit on the groups whose outcome was known at a cut (as a process refitting at that moment would
have), then score every group opened after the cut at several points of its life — 25 %, 50 %
and 75 % of its time limit by default — with the state it had at that moment rebuilt from the
order and payment times. Only groups still open at that moment are scored (a formed group is
not on the board's at-risk list). Reported: Brier score of the model, of the base rate (the
training formation rate) and of a stronger baseline (the training formation rate among groups
still open at the same point of their life), the Brier skill score, log loss, and a reliability
table in ten bins.

:func:`calibrate` runs on any database; :func:`calibrate_demo` builds a throw-away demo database
first (what ``tuan board calibrate`` does without ``--database-url``).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from tuan.analytics.formation import FitConfig, FloatArray, FormationModel, fit
from tuan.analytics.formation_store import (
    DEFAULT_ZONE,
    Timelines,
    epoch,
    load_timelines,
)
from tuan.groupbuy.store import buy_groups

CHECKPOINTS = (0.25, 0.5, 0.75)
TRAIN_SHARE = 0.7  # the cut: this share of the closed groups (by opening time) before it
EPS = 1e-6  # probabilities are clipped to [EPS, 1 − EPS] for the log loss
# The demo's "now" for a reproducible calibration: the one tests/integration/test_demo.py pins.
DEMO_END = datetime(2026, 8, 1, 13, 5, 0, tzinfo=UTC)


@dataclass(frozen=True)
class ReliabilityBin:
    lo: float
    hi: float
    mean_predicted: float  # NaN in an empty bin
    observed: float  # share that formed; NaN in an empty bin
    count: int


@dataclass(frozen=True)
class CheckpointScore:
    checkpoint: float  # fraction of the time limit elapsed
    count: int  # groups still open there
    observed: float  # share of them that formed
    brier_model: float
    brier_base: float
    brier_checkpoint_base: float  # the training rate among groups still open at this point


@dataclass(frozen=True)
class CalibrationReport:
    cut: datetime
    checkpoints: tuple[float, ...]
    train_groups: int
    test_groups: int
    points: int  # (group, checkpoint) pairs scored
    base_rate: float  # training formation rate
    observed_rate: float  # formation rate over the scored points
    brier_model: float
    brier_base: float
    brier_skill: float  # 1 − model / base
    brier_checkpoint_base: float
    brier_skill_vs_checkpoint: float
    log_loss_model: float
    log_loss_base: float
    reliability: tuple[ReliabilityBin, ...]
    by_checkpoint: tuple[CheckpointScore, ...]
    fit_seconds: float
    model: dict[str, Any] = field(default_factory=dict)
    predictions: tuple[tuple[float, int], ...] = field(default=(), repr=False)
    fitted: FormationModel | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(replace(self, fitted=None, predictions=()))
        d["cut"] = self.cut.isoformat()
        d.pop("predictions")
        d.pop("fitted")
        safe: dict[str, Any] = _json_safe(d)
        return safe


def _json_safe(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) else round(x, 6)
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def brier(p: FloatArray, y: FloatArray) -> float:
    return float(np.mean((p - y) ** 2)) if len(p) else math.nan


def log_loss(p: FloatArray, y: FloatArray) -> float:
    if not len(p):
        return math.nan
    q = np.clip(p, EPS, 1.0 - EPS)
    return float(-np.mean(y * np.log(q) + (1.0 - y) * np.log(1.0 - q)))


def reliability_table(p: FloatArray, y: FloatArray, bins: int = 10) -> tuple[ReliabilityBin, ...]:
    """Ten equal-width bins of the predicted probability (the last one includes 1)."""
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    out = []
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        out.append(
            ReliabilityBin(
                lo=b / bins,
                hi=(b + 1) / bins,
                mean_predicted=float(p[sel].mean()) if n else math.nan,
                observed=float(y[sel].mean()) if n else math.nan,
                count=n,
            )
        )
    return tuple(out)


def default_cut(conn: Connection, share: float = TRAIN_SHARE) -> datetime:
    """The opening time before which ``share`` of the closed groups opened."""
    g = buy_groups.c
    opened = sorted(
        float(x)
        for x in conn.execute(
            select(epoch(g.opened_at)).where(g.status.in_(("formed", "settled", "failed")))
        ).scalars()
    )
    if len(opened) < 2:
        raise ValueError("not enough closed groups to split")
    at = opened[min(len(opened) - 1, int(len(opened) * share))]
    return datetime.fromtimestamp(at, UTC)


def calibrate(
    conn: Connection,
    *,
    cut: datetime | None = None,
    checkpoints: tuple[float, ...] = CHECKPOINTS,
    config: FitConfig | None = None,
    zone: str = DEFAULT_ZONE,
) -> CalibrationReport:
    """Fit before ``cut`` (default: 70 % of the closed groups), score the groups opened after it."""
    cut = cut or default_cut(conn)
    train = load_timelines(conn, closed_by=cut, zone=zone)
    started = time.perf_counter()
    model = fit(train.history(), config=config, fitted_at=cut)
    fit_s = time.perf_counter() - started
    test = load_timelines(conn, opened_from=cut, zone=zone)
    return score(model, test, train, checkpoints=checkpoints, cut=cut, fit_seconds=fit_s)


def score(
    model: FormationModel,
    test: Timelines,
    train: Timelines,
    *,
    checkpoints: tuple[float, ...] = CHECKPOINTS,
    cut: datetime,
    fit_seconds: float = math.nan,
) -> CalibrationReport:
    """Score ``model`` on ``test`` at each checkpoint; ``train`` gives the checkpoint baselines."""
    # Strata of the test groups, by name, into the model's strata.
    names = np.array([*test.strata, ""], dtype=object)
    stratum = model.stratum_index(names[np.where(test.stratum >= 0, test.stratum, -1)])
    preds: list[FloatArray] = []
    outcomes: list[FloatArray] = []
    cp_base: list[FloatArray] = []
    per_cp: list[CheckpointScore] = []
    base = model.formation_rate
    for f in checkpoints:
        at = test.opened + f * (test.deadline - test.opened)
        st = test.state_at(at)
        keep = st["open"]
        p = model.probabilities(
            st["paid"][keep],
            test.group_size[keep],
            st["elapsed_h"][keep],
            st["left_h"][keep],
            stratum=stratum[keep],
            virtual_within=test.virtual_within[keep],
            pending=st["pending"][keep],
            open_tod_h=st["open_tod_h"][keep],
            accepting=st["accepting"][keep],
        )
        y = test.formed[keep].astype(np.float64)
        tr = train.state_at(train.opened + f * (train.deadline - train.opened))
        still = tr["open"]
        rate = float(train.formed[still].mean()) if still.any() else base
        preds.append(p)
        outcomes.append(y)
        cp_base.append(np.full(len(y), rate))
        per_cp.append(
            CheckpointScore(
                checkpoint=f,
                count=len(y),
                observed=float(y.mean()) if len(y) else math.nan,
                brier_model=brier(p, y),
                brier_base=brier(np.full(len(y), base), y),
                brier_checkpoint_base=brier(np.full(len(y), rate), y),
            )
        )
    p_all = np.concatenate(preds) if preds else np.zeros(0)
    y_all = np.concatenate(outcomes) if outcomes else np.zeros(0)
    b_all = np.full(len(y_all), base)
    cpb_all = np.concatenate(cp_base) if cp_base else np.zeros(0)
    bm, bb, bc = brier(p_all, y_all), brier(b_all, y_all), brier(cpb_all, y_all)
    return CalibrationReport(
        cut=cut,
        checkpoints=tuple(checkpoints),
        train_groups=model.n_groups,
        test_groups=len(test),
        points=len(y_all),
        base_rate=base,
        observed_rate=float(y_all.mean()) if len(y_all) else math.nan,
        brier_model=bm,
        brier_base=bb,
        brier_skill=1.0 - bm / bb if bb > 0 else math.nan,
        brier_checkpoint_base=bc,
        brier_skill_vs_checkpoint=1.0 - bm / bc if bc > 0 else math.nan,
        log_loss_model=log_loss(p_all, y_all),
        log_loss_base=log_loss(b_all, y_all),
        reliability=reliability_table(p_all, y_all),
        by_checkpoint=tuple(per_cp),
        fit_seconds=fit_seconds,
        model=model.summary(),
        predictions=tuple(zip(p_all.tolist(), y_all.astype(int).tolist(), strict=True)),
        fitted=model,
    )


def time_predictions(
    model: FormationModel | None, *, n: int = 100_000, repeat: int = 7, seed: int = 0
) -> dict[str, float]:
    """Milliseconds to score ``n`` open groups at once (synthetic states; best and median)."""
    if model is None:
        return {"groups": n, "best_ms": math.nan, "median_ms": math.nan}
    rng = np.random.default_rng(seed)
    size = rng.choice([2, 3, 4, 5], n, p=[0.35, 0.35, 0.15, 0.15])
    life = rng.choice([12.0, 24.0, 48.0], n, p=[0.2, 0.65, 0.15])
    elapsed = rng.uniform(0.0, 1.0, n) * life
    args = (rng.integers(0, size), size, elapsed, life - elapsed)
    kwargs = {
        "pending": rng.choice([0, 1, 2], n, p=[0.8, 0.15, 0.05]),
        "open_tod_h": rng.uniform(0.0, 24.0, n),
        "virtual_within": rng.choice([0, 1], n, p=[0.85, 0.15]),
        "accepting": rng.uniform(size=n) < 0.97,
        "stratum": rng.integers(-1, max(len(model.strata), 1), n),
    }
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        model.probabilities(*args, **kwargs)
        times.append(time.perf_counter() - started)
    return {
        "groups": n,
        "best_ms": round(min(times) * 1e3, 2),
        "median_ms": round(float(np.median(times)) * 1e3, 2),
    }


def calibrate_demo(
    *,
    seed: int = 42,
    scale: float = 1.0,
    end: datetime = DEMO_END,
    config: FitConfig | None = None,
    checkpoints: tuple[float, ...] = CHECKPOINTS,
    keep_database: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CalibrationReport:
    """Build a demo business (``tuan demo``'s, pinned to ``end``) in a temporary SQLite file and
    calibrate on it. ``keep_database``: build it there instead and leave it."""
    from tuan.bootstrap import build, create_schema
    from tuan.config import Settings
    from tuan.demo.simulate import run_demo
    from tuan.shared.clock import FrozenClock

    with tempfile.TemporaryDirectory(prefix="tuan-calibrate-") as tmp:
        path = keep_database or Path(tmp) / "demo.db"
        settings = Settings(database_url=f"sqlite:///{path}")
        container = build(settings, clock=FrozenClock(end))
        try:
            create_schema(container.db)
            run_demo(
                container,
                seed=seed,
                scale=scale,
                end=end,
                wall_clock=lambda: end + timedelta(seconds=7),
                progress=progress,
            )
            with container.db.read() as conn:
                return calibrate(
                    conn, config=config, checkpoints=checkpoints, zone=settings.timezone
                )
        finally:
            container.close()


def closed_group_count(conn: Connection) -> int:
    g = buy_groups.c
    return int(
        conn.execute(
            select(func.count()).where(g.status.in_(("formed", "settled", "failed")))
        ).scalar_one()
    )


def reliability_svg(report: CalibrationReport, *, title: str = "") -> str:
    """A self-contained SVG reliability diagram: predicted vs observed, bubble size = count."""
    w, h, pad = 440, 440, 60
    side = min(w - 2 * pad, h - 2 * pad)

    def x(v: float) -> float:
        return pad + v * side

    def y(v: float) -> float:
        return pad + (1.0 - v) * side

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="13">'
        f"{_esc(title or 'Formation odds: reliability')}</text>",
    ]
    for t in range(11):
        v = t / 10
        parts.append(
            f'<line x1="{x(v):.1f}" y1="{y(0):.1f}" x2="{x(v):.1f}" y2="{y(1):.1f}" stroke="#eee"/>'
        )
        parts.append(
            f'<line x1="{x(0):.1f}" y1="{y(v):.1f}" x2="{x(1):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
        )
        if t % 2 == 0:
            parts.append(
                f'<text x="{x(v):.1f}" y="{y(0) + 16:.1f}" text-anchor="middle">{v:.1f}</text>'
            )
            parts.append(
                f'<text x="{x(0) - 8:.1f}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>'
            )
    parts.append(
        f'<rect x="{x(0)}" y="{y(1)}" width="{side}" height="{side}" fill="none" stroke="#999"/>'
    )
    parts.append(
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#888" '
        'stroke-dasharray="4 4"/>'
    )
    pts = [b for b in report.reliability if b.count]
    top = max((b.count for b in pts), default=1)
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{x(b.mean_predicted):.1f},{y(b.observed):.1f}"
        for i, b in enumerate(pts)
    )
    if path:
        parts.append(f'<path d="{path}" fill="none" stroke="#d9480f" stroke-width="1.5"/>')
    for b in pts:
        r = 3 + 9 * math.sqrt(b.count / top)
        parts.append(
            f'<circle cx="{x(b.mean_predicted):.1f}" cy="{y(b.observed):.1f}" r="{r:.1f}" '
            'fill="#d9480f" fill-opacity="0.55" stroke="#d9480f">'
            f"<title>{b.lo:.1f}–{b.hi:.1f}: predicted {b.mean_predicted:.3f}, "
            f"observed {b.observed:.3f}, n={b.count}</title></circle>"
        )
        parts.append(
            f'<text x="{x(b.mean_predicted) + r + 3:.1f}" y="{y(b.observed) + 4:.1f}" '
            f'fill="#666" font-size="10">{b.count}</text>'
        )
    parts.append(
        f'<text x="{x(0.5)}" y="{h - 12}" text-anchor="middle">'
        "predicted P(form) · 预测成团概率</text>"
    )
    parts.append(
        f'<text transform="translate(16 {y(0.5)}) rotate(-90)" text-anchor="middle">'
        "observed share formed · 实际成团比例</text>"
    )
    parts.append(
        f'<text x="{x(0) + 8}" y="{y(1) + 16}">Brier {report.brier_model:.4f} vs base '
        f"{report.brier_base:.4f} · skill {report.brier_skill:.3f} · n={report.points}</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def reliability_echarts(report: CalibrationReport) -> dict[str, Any]:
    """The same diagram as an ECharts option (the console draws charts with ECharts)."""
    pts = [b for b in report.reliability if b.count]
    return {
        "title": {"text": "Formation odds: reliability · 成团概率校准"},
        "tooltip": {"trigger": "item"},
        "xAxis": {"type": "value", "min": 0, "max": 1, "name": "predicted"},
        "yAxis": {"type": "value", "min": 0, "max": 1, "name": "observed"},
        "series": [
            {
                "type": "line",
                "data": [[0, 0], [1, 1]],
                "lineStyle": {"type": "dashed", "color": "#888"},
                "symbol": "none",
            },
            {
                "type": "scatter",
                "data": [[round(b.mean_predicted, 4), round(b.observed, 4), b.count] for b in pts],
            },
        ],
    }


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
