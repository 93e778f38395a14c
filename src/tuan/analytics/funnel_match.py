"""The funnel's ordered match and its time-to-convert quantiles, compiled with Numba (ADR 0014).

:func:`tuan.analytics.funnels.funnel` reads the rows of a funnel's steps from DuckDB (the scan,
the step filters, the windows) and hands them here as NumPy columns, in one or more *sources*
``(person, t, dh, mask)``: the 64-bit person key, the instant in epoch microseconds, the 64-bit
hash of the breakdown value (read on entry rows only) and the steps the row can fill (bit 0:
it can be a person's entry — a step-1 event in the entry window; bit k: it can fill step k+1).
The match is the funnel's definition:

* a person's entry is their earliest entry row, and the breakdown value is that row's; ``tie``
  marks people whose earliest instant is shared by entry rows with different values (the
  caller then asks the exact statement, which breaks the tie by ``event_id``);
* step k is the earliest step-k row at or after step k−1 (strictly after when both steps are
  the same event type) and no later than the entry plus the window.

Within one step the rows may come in any order (each step is a minimum), so the rows are first
copied into buckets by (partition of people, step), in parallel, and each partition is then
matched step by step with a hash table small enough to stay in the CPU's cache. Done in SQL,
the same work is an aggregation and one hash join per step over 64-bit keys spread across the
machine's memory, most of the funnel's time.

The kernels release the GIL and run on a few threads. The first call in a process compiles
them or loads them from Numba's cache (``__pycache__`` beside this file; ``NUMBA_CACHE_DIR``
moves it).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["MAX_STEPS", "NEVER", "Matched", "Source", "factorize", "match", "step_quantiles"]

NEVER = np.iinfo(np.int64).max  # the instant of a step not reached
MAX_STEPS = np.iinfo(np.uint32).bits  # the steps a row's mask can name
_PART_ROWS = 4096  # entry rows per partition: its hash table stays in the CPU's cache
_MAX_BITS = 14
_SLICES_PER_THREAD = 4  # partitions are handed out in this many slices per thread

# (person key, epoch µs, breakdown hash — may be empty when no row has bit 0 —, step mask)
Source = tuple[
    npt.NDArray[np.uint64], npt.NDArray[np.int64], npt.NDArray[np.uint64], npt.NDArray[np.uint32]
]


@dataclass(frozen=True)
class Matched:
    """One row per entering person: ``times[:, k]`` the instant of step k+1 (``NEVER`` past the
    furthest step reached), ``dims`` the entry's breakdown hash, ``tie`` as above."""

    times: npt.NDArray[np.int64]
    dims: npt.NDArray[np.uint64]
    tie: npt.NDArray[np.bool_]


# The kernels. Numba compiles them for the argument types they are called with; everything is
# passed as arrays and plain integers so that each compiles once.


@njit(cache=True, nogil=True)
def _distribute(person, t, dh, mask, nsteps, nbits, lo, hi, slots, bp, bt, bd, copy):
    """Rows ``lo … hi-1`` by bucket ``part * nsteps + step`` (a row in several steps goes to
    each): counted into ``slots``, or with ``copy`` copied to their buckets from ``slots`` (this
    slice's next free row in each); the breakdown hash only for entry rows."""
    shift = np.uint64(64 - nbits) if nbits else np.uint64(0)
    for i in range(lo, hi):
        m = mask[i]
        if m == 0:
            continue
        p = np.int64(person[i] >> shift) * nsteps if nbits else np.int64(0)
        for s in range(nsteps):
            if (m >> np.uint32(s)) & np.uint32(1):
                if copy:
                    j = slots[p + s]
                    bp[j] = person[i]
                    bt[j] = t[i]
                    if s == 0:
                        bd[j] = dh[i]
                slots[p + s] += 1


@njit(cache=True, nogil=True)
def _probe(slot, keys, k, mk):
    """The position of key ``k`` in an open-addressed table (``slot`` −1: free), or the free
    position where it would go (linear probing from its low bits: keys are hashes already)."""
    h = k & mk
    while slot[h] != -1 and keys[h] != k:
        h = (h + np.uint64(1)) & mk
    return h


@njit(cache=True, nogil=True)
def _match_parts(starts, bp, bt, bd, nsteps, strict, w, bases, p0, p1, times, dims, tie, used):
    """Partitions ``p0 … p1-1``: partition p's people go to ``times[bases[p] : bases[p] +
    used[p]]`` (``bases[p]``: the entry rows of the partitions before it)."""
    for p in range(p0, p1):
        b0 = p * nsteps
        a, b = starts[b0], starts[b0 + 1]
        cap = 16
        while cap < 2 * (b - a):
            cap *= 2
        mk = np.uint64(cap - 1)
        slot = np.full(cap, -1, np.int64)
        keys = np.empty(cap, np.uint64)
        ns = 0
        for i in range(a, b):  # the entries: the earliest entry row per person
            k = bp[i]
            h = _probe(slot, keys, k, mk)
            s = slot[h]
            if s == -1:
                s = bases[p] + ns
                ns += 1
                slot[h] = s
                keys[h] = k
                for j in range(nsteps):
                    times[s, j] = NEVER
            ti = bt[i]
            if ti < times[s, 0]:
                times[s, 0] = ti
                dims[s] = bd[i]
                tie[s] = False
            elif ti == times[s, 0] and bd[i] != dims[s]:
                tie[s] = True
        used[p] = ns
        for step in range(1, nsteps):  # each later step, after the one before it
            after = strict[step]
            for i in range(starts[b0 + step], starts[b0 + step + 1]):
                s = slot[_probe(slot, keys, bp[i], mk)]
                if s == -1:
                    continue
                prev = times[s, step - 1]
                ti = bt[i]
                if prev == NEVER or ti >= times[s, step] or ti > times[s, 0] + w:
                    continue
                if ti > prev or (ti == prev and not after):
                    times[s, step] = ti


@njit(cache=True, nogil=True)
def _compact(times, dims, tie, bases, used, out_times, out_dims, out_tie):
    o = 0
    for p in range(len(bases)):
        for j in range(bases[p], bases[p] + used[p]):
            out_times[o] = times[j]
            out_dims[o] = dims[j]
            out_tie[o] = tie[j]
            o += 1


@njit(cache=True, nogil=True)
def _nth(a, lo, hi, k):
    """Reorder ``a[lo:hi]`` so that ``a[k]`` holds the value sorted order puts there, with
    nothing larger before it and nothing smaller after it (quickselect, median-of-three)."""
    hi -= 1
    while hi > lo:
        mid = (lo + hi) // 2
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@njit(cache=True, nogil=True)
def _select(values, qs, out):
    """``out[j]`` = ``quantile_cont`` of ``values`` at ``qs[j]`` (``qs`` ascending; ``values``
    reordered): the position (n−1)·q, interpolated linearly between the order statistics on
    either side of it as DuckDB does, ``lo·(1−d) + hi·d``."""
    n = len(values)
    lo = np.int64(0)  # everything before ``lo`` is no larger than anything from it on
    for j in range(len(qs)):
        rn = (n - 1) * qs[j]
        f = np.int64(np.floor(rn))
        _nth(values, lo, n, f)
        below = values[f]
        d = rn - f
        if d == 0.0:
            out[j] = below
        else:
            above = values[f + 1]  # the smallest value after position f
            for i in range(f + 2, n):
                if values[i] < above:
                    above = values[i]
            out[j] = below * (1.0 - d) + above * d
        lo = f


@njit(cache=True, nogil=True)
def _seconds(times, codes, ngroups, k, from_entry, out):
    """The seconds of step ``k`` (from step k−1, or from the entry) of the people who reached
    it, grouped by ``codes``; ``out[g, 0]`` the count per group and at ``g = ngroups`` in all.
    Returns the values and the groups' starts."""
    m = times.shape[0]
    count = np.zeros(ngroups, np.int64)
    for s in range(m):
        if times[s, k] != NEVER:
            count[codes[s]] += 1
    start = np.zeros(ngroups + 1, np.int64)
    for g in range(ngroups):
        start[g + 1] = start[g] + count[g]
        out[g, 0] = count[g]
    out[ngroups, 0] = start[ngroups]
    values = np.empty(start[ngroups])
    pos = start[:ngroups].copy()
    base = 0 if from_entry else k - 1
    for s in range(m):
        if times[s, k] != NEVER:
            j = pos[codes[s]]
            values[j] = (times[s, k] - times[s, base]) / 1e6
            pos[codes[s]] = j + 1
    return values, start


@njit(cache=True, nogil=True)
def _step_column(times, codes, ngroups, qs, k, from_entry, out, col):
    """Quantiles of one step's seconds into ``out[:, col : col + len(qs)]`` per group and in
    all (``out[g, 0]``: the people of the group who reached the step)."""
    values, start = _seconds(times, codes, ngroups, k, from_entry, out)
    nq = len(qs)
    for g in range(ngroups):
        if start[g + 1] > start[g]:
            _select(values[start[g] : start[g + 1]], qs, out[g, col : col + nq])
    if start[ngroups] > 0:
        _select(values, qs, out[ngroups, col : col + nq])


@njit(cache=True, nogil=True)
def _factorize(values):
    """``codes`` (0, 1, … in order of first appearance) and the distinct ``values`` (64-bit
    hashes)."""
    n = len(values)
    cap = 16
    while cap < 2 * n:
        cap *= 2
    mk = np.uint64(cap - 1)
    slot = np.full(cap, -1, np.int64)
    keys = np.empty(cap, np.uint64)
    codes = np.empty(n, np.int64)
    uniques = np.empty(n, np.uint64)
    nu = 0
    for i in range(n):  # the values are breakdown hashes: probed by their low bits
        k = values[i]
        h = _probe(slot, keys, k, mk)
        if slot[h] == -1:
            slot[h] = nu
            keys[h] = k
            uniques[nu] = k
            nu += 1
        codes[i] = slot[h]
    return codes, uniques[:nu].copy()


# What the callers use.


def factorize(values: npt.NDArray[np.uint64]) -> tuple[npt.NDArray[np.int64], Any]:
    """Codes for the breakdown hashes of the entries, and the distinct hashes."""
    codes, uniques = _factorize(values)
    return codes, uniques


def _threads() -> int:
    """Threads for the kernels: one per CPU this process may use, up to four."""
    return min(4, len(os.sched_getaffinity(0)))


def _pool() -> ThreadPoolExecutor | None:
    n = _threads()
    return ThreadPoolExecutor(n) if n > 1 else None


def _each(
    pool: ThreadPoolExecutor | None, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]]
) -> None:
    """``fn(*args)`` for each of ``calls``, on the pool's threads when there is one."""
    if pool is None or len(calls) <= 1:
        for args in calls:
            fn(*args)
        return
    for f in [pool.submit(fn, *args) for args in calls]:
        f.result()


def _bucket(
    sources: Sequence[Source], nsteps: int, nbits: int, pool: ThreadPoolExecutor | None
) -> tuple[npt.NDArray[np.int64], Any, Any, Any]:
    """Every source's rows copied into buckets ``part * nsteps + step`` (the partition is the
    top ``nbits`` bits of the person key): the buckets' starts and the copied columns. Each
    thread counts and then copies its own slices of the rows (a parallel radix partition)."""
    nb = (1 << nbits) * nsteps
    per = 1 if pool is None else _threads()
    tasks = []  # (source, lo, hi)
    for src in sources:
        cuts = np.linspace(0, len(src[3]), per + 1).astype(np.int64)
        tasks += [(src, int(a), int(b)) for a, b in itertools.pairwise(cuts) if b > a]
    counts = np.zeros((max(1, len(tasks)), nb), np.int64)
    none_u, none_i = np.zeros(0, np.uint64), np.zeros(0, np.int64)
    _each(
        pool,
        _distribute,
        [
            (*s, nsteps, nbits, a, b, counts[i], none_u, none_i, none_u, False)
            for i, (s, a, b) in enumerate(tasks)
        ],
    )
    starts = np.zeros(nb + 1, np.int64)
    np.cumsum(counts.sum(axis=0), out=starts[1:])
    # task i writes bucket b from: the bucket's start plus what the tasks before it put there
    pos = starts[:-1] + np.cumsum(counts, axis=0) - counts
    total = int(starts[-1])
    bp = np.empty(total, np.uint64)
    bt = np.empty(total, np.int64)
    bd = np.zeros(total, np.uint64)
    _each(
        pool,
        _distribute,
        [(*s, nsteps, nbits, a, b, pos[i], bp, bt, bd, True) for i, (s, a, b) in enumerate(tasks)],
    )
    return starts, bp, bt, bd


def match(sources: Sequence[Source], strict: Sequence[bool], window_us: int) -> Matched:
    """The ordered match of ``len(strict)`` steps over the rows of ``sources`` (``strict[k]``:
    step k+1 must come strictly after step k)."""
    nsteps = len(strict)
    if not 1 <= nsteps <= MAX_STEPS:
        raise ValueError(f"a funnel match takes 1 to {MAX_STEPS} steps, not {nsteps}")
    window_us = min(window_us, 1 << 62)  # any longer window is all of time: no int64 overflow
    entries = sum(int(np.count_nonzero(s[3] & np.uint32(1))) for s in sources)
    nbits = 0
    while (entries >> nbits) > _PART_ROWS and nbits < _MAX_BITS:
        nbits += 1
    nparts = 1 << nbits
    pool = _pool()
    try:
        starts, bp, bt, bd = _bucket(sources, nsteps, nbits, pool)
        heads = np.arange(nparts) * nsteps
        entry_rows = starts[heads + 1] - starts[heads]
        bases = np.zeros(nparts, np.int64)
        np.cumsum(entry_rows[:-1], out=bases[1:])
        size = int(entry_rows.sum())
        times = np.empty((size, nsteps), np.int64)
        dims = np.zeros(size, np.uint64)
        tie = np.zeros(size, np.bool_)
        used = np.zeros(nparts, np.int64)
        # the partitions in slices of about equal entry rows, a few slices per thread
        slices = 1 if pool is None else min(nparts, _SLICES_PER_THREAD * _threads())
        cuts = np.searchsorted(bases, np.linspace(0, size, slices + 1)[1:-1])
        edges = [0, *sorted({int(c) for c in cuts} - {0, nparts}), nparts]
        args = (starts, bp, bt, bd, nsteps, np.asarray(strict, np.bool_), window_us, bases)
        _each(
            pool,
            _match_parts,
            [(*args, lo, hi, times, dims, tie, used) for lo, hi in itertools.pairwise(edges)],
        )
    finally:
        if pool is not None:
            pool.shutdown()
    people = int(used.sum())
    out = Matched(
        np.empty((people, nsteps), np.int64), np.empty(people, np.uint64), np.empty(people, bool)
    )
    _compact(times, dims, tie, bases, used, out.times, out.dims, out.tie)
    return out


def step_quantiles(
    times: npt.NDArray[np.int64],
    codes: npt.NDArray[np.int64],
    ngroups: int,
    qs: Sequence[float],
) -> npt.NDArray[np.float64]:
    """``out[k, g]`` for each later step k (≥ 1) and group g (``codes``; ``g = ngroups``: all):
    the people who reached step k, the quantiles ``qs`` of the seconds from step k−1, then of
    the seconds from the entry (NaN where nobody reached it)."""
    nsteps = times.shape[1]
    nq = len(qs)
    order = np.argsort(np.asarray(qs, np.float64), kind="stable")  # selected in rising order
    q = np.asarray(qs, np.float64)[order]
    out = np.full((nsteps, ngroups + 1, 1 + 2 * nq), np.nan)
    out[:, :, 0] = 0
    pool = _pool()
    try:
        _each(
            pool,
            _step_column,
            [
                (times, codes, ngroups, q, k, from_entry, out[k], 1 + from_entry * nq)
                for k in range(1, nsteps)
                for from_entry in (0, 1)
                if k > 1 or not from_entry  # step 2's previous step is the entry
            ],
        )
    finally:
        if pool is not None:
            pool.shutdown()
    if nsteps > 1:
        out[1, :, 1 + nq :] = out[1, :, 1 : 1 + nq]
    back = np.empty_like(order)  # the quantiles back in the order asked
    back[order] = np.arange(nq)
    out[:, :, 1 : 1 + nq] = out[:, :, 1 : 1 + nq][:, :, back]
    out[:, :, 1 + nq :] = out[:, :, 1 + nq :][:, :, back]
    return out


if __name__ == "__main__":  # ``make test``, ``make demo``: compile once, into the cache
    from tuan.analytics import funnels

    funnels.warm()
