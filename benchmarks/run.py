"""Run every benchmark and print its figures (``python -m benchmarks``, ``make bench``)."""

from __future__ import annotations

import asyncio
import contextlib
import json

from rich.console import Console

from benchmarks import board, expiry_sweep, http_join
from benchmarks import schedule as schedule_bench

console = Console(stderr=True)


def main(quick: bool = False) -> int:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    failures = 0
    console.rule("HTTP join-and-pay · 参团+支付")
    http = http_join.run(quick=quick)
    if http["oversold"] or http["errors"]:
        failures += 1
    console.rule("expiry sweep · 过期扫描")
    sweep = expiry_sweep.run(quick=quick)
    if not sweep["reconcile_ok"] or sweep["left_open"] or sweep["failed"] != sweep["groups"]:
        failures += 1
    console.rule("progress board · 进度看板")
    board_figures = board.run(quick=quick)
    console.rule("critical path · 关键路径")
    cpm = schedule_bench.run(quick=quick)
    too_slow = not quick and cpm["schedule_cpu_ms"] >= cpm["target_ms"]
    if not cpm["networkx_checked_equal"] or too_slow:
        failures += 1
    print(
        json.dumps(
            {
                k: http[k]
                for k in ("joins_per_s", "hello_per_s", "ratio", "p99_ms", "oversold", "paid_per_s")
            }
        )
    )
    print(json.dumps({"expiry_" + k: v for k, v in sweep.items()}))
    print(json.dumps({"board_" + k: v for k, v in board_figures.items()}))
    print(json.dumps({"schedule_" + k: v for k, v in cpm.items()}))
    return 1 if failures else 0
