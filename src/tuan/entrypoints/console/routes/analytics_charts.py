"""ECharts options for the analytics pages, built here as plain data (JSON in ``data-options``);
the page's script only hands them to ``echarts.init(...).setOption``. Every chart also has its
numbers in a table on the page (accessibility: the chart is an image of the table)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

PALETTE = ["#1d4ed8", "#c2410c", "#166534", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#475569"]


def dumps(option: dict[str, Any]) -> str:
    return json.dumps(option, ensure_ascii=False, allow_nan=False, default=str)


def _base() -> dict[str, Any]:
    return {
        "animation": False,
        "color": PALETTE,
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 56, "right": 24, "top": 40, "bottom": 40, "containLabel": True},
    }


def line(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    percent: bool = False,
) -> str:
    opt = _base()
    opt.update(
        legend={"top": 0, "type": "scroll"},
        xAxis={"type": "category", "data": list(categories)},
        yAxis={"type": "value", "axisLabel": {"formatter": "{value}%" if percent else "{value}"}},
        series=[
            {"name": name, "type": "line", "data": list(values), "connectNulls": False}
            for name, values in series
        ],
    )
    return dumps(opt)


def bars(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    horizontal: bool = False,
    percent: bool = False,
) -> str:
    opt = _base()
    value_axis = {"type": "value", "axisLabel": {"formatter": "{value}%" if percent else "{value}"}}
    cat_axis: dict[str, Any] = {"type": "category", "data": list(categories)}
    if horizontal:
        cat_axis["inverse"] = True
    opt.update(
        legend={"top": 0},
        xAxis=value_axis if horizontal else cat_axis,
        yAxis=cat_axis if horizontal else value_axis,
        series=[{"name": name, "type": "bar", "data": list(values)} for name, values in series],
    )
    return dumps(opt)


def funnel(names: Sequence[str], reached: Sequence[int]) -> str:
    opt = _base()
    opt["tooltip"] = {"trigger": "item", "formatter": "{b}: {c}"}
    opt["series"] = [
        {
            "type": "funnel",
            "sort": "none",
            "left": "10%",
            "width": "80%",
            "minSize": "8%",
            "label": {"show": True, "position": "inside", "formatter": "{b}: {c}"},
            "data": [{"name": n, "value": v} for n, v in zip(names, reached, strict=True)],
        }
    ]
    return dumps(opt)


def heatmap(
    x: Sequence[str], y: Sequence[str], cells: Sequence[tuple[int, int, float]], label: str
) -> str:
    opt = _base()
    opt["tooltip"] = {"trigger": "item"}
    opt["grid"] = {"left": 90, "right": 24, "top": 16, "bottom": 70, "containLabel": True}
    opt.update(
        xAxis={"type": "category", "data": list(x), "splitArea": {"show": True}},
        yAxis={"type": "category", "data": list(y), "inverse": True, "splitArea": {"show": True}},
        visualMap={
            "min": 0,
            "max": 100,
            "calculable": False,
            "orient": "horizontal",
            "left": "center",
            "bottom": 0,
            "inRange": {"color": ["#eff6ff", "#1d4ed8"]},
            "text": ["100%", "0%"],
        },
        series=[
            {
                "name": label,
                "type": "heatmap",
                "data": [[i, j, round(v, 1)] for i, j, v in cells],
                "label": {"show": True, "formatter": "{@[2]}%"},
            }
        ],
    )
    return dumps(opt)


def forecast_band(
    history_days: Sequence[date],
    history: Sequence[int],
    days: Sequence[date],
    mean: Sequence[float],
    lo: Sequence[float],
    hi: Sequence[float],
    labels: tuple[str, str, str],
) -> str:
    """History, point forecast and a shaded interval (a stacked pair: lower, then width)."""
    cats = [d.isoformat() for d in [*history_days, *days]]
    pad = [None] * len(history_days)
    opt = _base()
    opt.update(
        legend={"top": 0, "data": list(labels)},
        xAxis={"type": "category", "data": cats},
        yAxis={"type": "value", "min": 0},
        series=[
            {
                "name": labels[0],
                "type": "line",
                "data": [*history, *([None] * len(days))],
                "showSymbol": False,
            },
            {
                "name": labels[1],
                "type": "line",
                "data": [*pad, *[round(v, 2) for v in mean]],
                "lineStyle": {"type": "dashed"},
                "showSymbol": False,
            },
            {
                "name": "_lo",
                "type": "line",
                "data": [*pad, *[round(v, 2) for v in lo]],
                "stack": "band",
                "lineStyle": {"opacity": 0},
                "showSymbol": False,
                "tooltip": {"show": False},
            },
            {
                "name": labels[2],
                "type": "line",
                "data": [*pad, *[round(h - v, 2) for v, h in zip(lo, hi, strict=True)]],
                "stack": "band",
                "lineStyle": {"opacity": 0},
                "areaStyle": {"color": "rgba(194, 65, 12, 0.18)"},
                "showSymbol": False,
            },
        ],
    )
    return dumps(opt)
