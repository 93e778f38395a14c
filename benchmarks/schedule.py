"""Critical path method on a 10,000-task project with 20,000 links, beside networkx.

The project is a random DAG (seeded): tasks in a random order, each link from an earlier task to
a later one, durations 0-20 days (a few milestones), link types FS/SS/FF/SF in proportions
70/10/10/10 and lags from -3 to +5 days. Measured: :func:`tuan.projects.schedule.schedule`
(validation, topological order, forward and backward pass, floats, the result objects) from the
mappings a caller holds, median of ``--runs``.

Baseline in the same run: networkx's ``dag_longest_path`` + ``dag_longest_path_length`` on the
same tasks with finish-to-start links only (the comparison networkx can make: it knows node
weights only as edge weights). The graph is built before the clock starts (the weight of
``u -> v`` is ``duration(u) + lag``; a source feeds every task at 0 and every task feeds a sink
with its duration), and the two answers are checked equal: the project length, and the
longest path is made of critical tasks in order. Our side of that comparison schedules the same
FS-only project and computes floats too, which networkx does not. Prints one JSON line.

    python -m benchmarks.schedule [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import networkx as nx  # type: ignore[import-untyped]
from rich.console import Console

from tuan.projects.schedule import Link, LinkType, schedule

console = Console(stderr=True)
TARGET_MS = 200.0
SEED = 20261122


def make_project(
    tasks: int, links: int, *, fs_only: bool = False, seed: int = SEED
) -> tuple[dict[str, int], list[Link]]:
    rng = random.Random(seed)
    ids = [f"T{i:05d}" for i in range(tasks)]
    rng.shuffle(ids)  # the input order is not a topological order
    durations = {task_id: (0 if rng.random() < 0.03 else rng.randint(1, 20)) for task_id in ids}
    by_rank = sorted(ids)
    types = [LinkType.FS] * 7 + [LinkType.SS, LinkType.FF, LinkType.SF]
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < links:
        a = rng.randrange(tasks - 1)
        b = min(tasks - 1, a + 1 + int(rng.expovariate(1 / 200)))  # mostly near: long chains
        pairs.add((a, b))
    result = [
        Link(
            by_rank[a],
            by_rank[b],
            LinkType.FS if fs_only else rng.choice(types),
            rng.randint(-3, 5),
        )
        for a, b in sorted(pairs, key=lambda _p: rng.random())
    ]
    return durations, result


def _median_ms(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time of the process, in ms, after a warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def run(*, quick: bool = False, runs: int | None = None) -> dict[str, Any]:
    tasks, n_links = (1_000, 2_000) if quick else (10_000, 20_000)
    runs = runs or (5 if quick else 11)
    durations, links = make_project(tasks, n_links)
    assert len(links) == n_links
    times = schedule(durations, links)
    schedule_ms, schedule_cpu_ms = _median_ms(lambda: schedule(durations, links), runs)

    fs_durations, fs_links = make_project(tasks, n_links, fs_only=True)
    graph = nx.DiGraph()
    for task_id, d in fs_durations.items():
        graph.add_edge("<source>", task_id, weight=0)
        graph.add_edge(task_id, "<sink>", weight=d)
    for link in fs_links:  # pairs are unique, so no edge is overwritten
        graph.add_edge(link.pred, link.succ, weight=fs_durations[link.pred] + link.lag)

    def longest() -> tuple[list[str], int]:
        return (
            nx.dag_longest_path(graph, weight="weight"),
            nx.dag_longest_path_length(graph, weight="weight"),
        )

    path, length = longest()
    fs_times = schedule(fs_durations, fs_links)
    networkx_ms, networkx_cpu_ms = _median_ms(longest, runs)
    fs_schedule_ms, fs_schedule_cpu_ms = _median_ms(lambda: schedule(fs_durations, fs_links), runs)
    project_ef = max(t.ef for t in fs_times.values())
    inner = path[1:-1]
    lag = {(link.pred, link.succ): link.lag for link in fs_links}
    same = (
        project_ef == length
        and all(fs_times[t].critical for t in inner)
        and fs_times[inner[0]].es == 0
        and fs_times[inner[-1]].ef == length
        and all(  # every link along the path binds
            fs_times[b].es == fs_times[a].ef + lag[a, b] for a, b in itertools.pairwise(inner)
        )
    )
    figures: dict[str, Any] = {
        "tasks": tasks,
        "links": n_links,
        "schedule_ms": round(schedule_ms, 1),
        "schedule_cpu_ms": round(schedule_cpu_ms, 1),
        "target_ms": TARGET_MS,
        "fs_schedule_ms": round(fs_schedule_ms, 1),
        "networkx_longest_path_ms": round(networkx_ms, 1),
        "ratio_to_networkx": round(fs_schedule_ms / networkx_ms, 2),
        "ratio_to_networkx_cpu": round(fs_schedule_cpu_ms / networkx_cpu_ms, 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "project_days": max(t.ef for t in times.values()),
        "critical_tasks": sum(t.critical for t in times.values()),
        "fs_project_days": project_ef,
        "networkx_checked_equal": same,
        "runs": runs,
    }
    console.print(
        f"schedule {tasks:,} tasks / {n_links:,} links (all link types): "
        f"[bold]{schedule_ms:.1f} ms[/] ({schedule_cpu_ms:.1f} ms CPU; target {TARGET_MS:.0f}); "
        f"FS only: {fs_schedule_ms:.1f} ms "
        f"vs networkx dag_longest_path {networkx_ms:.1f} ms; results equal: {same}"
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args(argv)
    figures = run(quick=args.quick, runs=args.runs)
    print(json.dumps(figures))
    ok = figures["networkx_checked_equal"] and (
        args.quick or figures["schedule_cpu_ms"] < TARGET_MS
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
