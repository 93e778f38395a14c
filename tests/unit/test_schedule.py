"""Critical path method (tuan.projects.schedule): textbook networks, link types, lags, errors.

Textbook networks, with their published figures:

- Taylor, *Introduction to Management Science*, chapter 8 (Project Management), solutions to
  the problems "network, earliest and latest event times, slack": two activity-on-arrow
  networks whose tables list Time, ES, EF, LS, LF and Slack for every activity (solutions manual
  pp. 114-115, https://ar.scribd.com/doc/47113515/TaylCh08). Activity ``i-j`` precedes every
  activity ``j-k``; the second network has a dummy ``4-5`` of 0 weeks (a milestone here).
- Hillier & Lieberman, *Introduction to Operations Research*, chapter "Project Management with
  PERT/CPM": the Reliable Construction Co. project (14 activities A-N in weeks; activity list
  e.g. https://solutioninn.com/study-help/questions/part-b-the-reliable-construction-company-has
  -just-made-the-14060241). Published: project length 44 weeks, critical path
  A-B-C-E-F-J-L-N, slack D 4, G 4, H 4, I 2, K 1, M 4, every other activity 0.
"""

from __future__ import annotations

import itertools

import networkx as nx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tuan.projects.schedule import (
    Link,
    LinkType,
    ScheduleCycleError,
    TaskTimes,
    UnknownTaskError,
    critical_path,
    parse_predecessors,
    schedule,
    tasks_from_rows,
)
from tuan.shared.errors import DomainError

FS, SS, FF, SF = LinkType.FS, LinkType.SS, LinkType.FF, LinkType.SF


def aoa(
    rows: list[tuple[str, int, int, int, int, int, int]],
) -> tuple[dict[str, int], list[Link], dict[str, tuple[int, int, int, int, int]]]:
    """Activity-on-arrow rows (activity, time, ES, EF, LS, LF, slack) as tasks and FS links."""
    durations = {name: time for name, time, *_ in rows}
    links = [
        Link(a, b)
        for a, b in itertools.product(durations, durations)
        if a.split("-")[1] == b.split("-")[0]
    ]
    published = {name: (es, ef, ls, lf, slack) for name, _t, es, ef, ls, lf, slack in rows}
    return durations, links, published


def figures(t: TaskTimes) -> tuple[int, int, int, int, int]:
    return (t.es, t.ef, t.ls, t.lf, t.total_float)


TAYLOR_1 = [  # activity, time, ES, EF, LS, LF, slack (critical path 1-3-4-5-6)
    ("1-2", 7, 0, 7, 2, 9, 2),
    ("1-3", 10, 0, 10, 0, 10, 0),
    ("2-4", 6, 7, 13, 9, 15, 2),
    ("3-4", 5, 10, 15, 10, 15, 0),
    ("3-5", 4, 10, 14, 14, 18, 4),
    ("4-5", 3, 15, 18, 15, 18, 0),
    ("5-6", 2, 18, 20, 18, 20, 0),
]
TAYLOR_2 = [  # 4-5 is a dummy (0 weeks); critical path 1-3-5-7-8-9
    ("1-2", 8, 0, 8, 1, 9, 1),
    ("1-3", 10, 0, 10, 0, 10, 0),
    ("1-4", 9, 0, 9, 6, 15, 6),
    ("2-5", 6, 8, 14, 9, 15, 1),
    ("2-6", 4, 8, 12, 16, 20, 8),
    ("3-5", 5, 10, 15, 10, 15, 0),
    ("4-5", 0, 9, 9, 15, 15, 6),
    ("4-7", 7, 9, 16, 20, 27, 11),
    ("5-7", 12, 15, 27, 15, 27, 0),
    ("5-8", 15, 15, 30, 16, 31, 1),
    ("6-9", 18, 12, 30, 20, 38, 8),
    ("7-8", 4, 27, 31, 27, 31, 0),
    ("8-9", 7, 31, 38, 31, 38, 0),
]


@pytest.mark.parametrize(
    ("rows", "path"),
    [
        (TAYLOR_1, ["1-3", "3-4", "4-5", "5-6"]),
        (TAYLOR_2, ["1-3", "3-5", "5-7", "7-8", "8-9"]),
    ],
)
def test_taylor_textbook_networks(
    rows: list[tuple[str, int, int, int, int, int, int]], path: list[str]
) -> None:
    durations, links, published = aoa(rows)
    times = schedule(durations, links)
    assert {name: figures(t) for name, t in times.items()} == published
    assert critical_path(times) == path
    assert all(t.critical == (t.total_float == 0) for t in times.values())


def test_zero_duration_dummy_is_a_milestone() -> None:
    durations, links, _ = aoa(TAYLOR_2)
    dummy = schedule(durations, links)["4-5"]
    assert dummy.es == dummy.ef == 9 and dummy.ls == dummy.lf == 15


RELIABLE = {  # activity: (weeks, immediate predecessors)
    "A": (2, ""),  # excavate
    "B": (4, "A"),  # foundation
    "C": (10, "B"),  # rough wall
    "D": (6, "C"),  # roof
    "E": (4, "C"),  # exterior plumbing
    "F": (5, "E"),  # interior plumbing
    "G": (7, "D"),  # exterior siding
    "H": (9, "E;G"),  # exterior painting
    "I": (7, "C"),  # electrical work
    "J": (8, "F;I"),  # wallboard
    "K": (4, "J"),  # flooring
    "L": (5, "J"),  # interior painting
    "M": (2, "H"),  # exterior fixtures
    "N": (6, "K;L"),  # interior fixtures
}


def test_hillier_lieberman_reliable_construction() -> None:
    durations = {a: weeks for a, (weeks, _p) in RELIABLE.items()}
    links = [
        Link(pred, a, kind, lag)
        for a, (_w, preds) in RELIABLE.items()
        for pred, kind, lag in parse_predecessors(preds)
    ]
    times = schedule(durations, links)
    assert max(t.ef for t in times.values()) == 44
    assert critical_path(times) == ["A", "B", "C", "E", "F", "J", "L", "N"]
    published_slack = {"D": 4, "G": 4, "H": 4, "I": 2, "K": 1, "M": 4}
    assert {a: t.total_float for a, t in times.items()} == {
        a: published_slack.get(a, 0) for a in RELIABLE
    }
    # The book's figure: H starts at 29 at the earliest (after G), 33 at the latest.
    assert (times["H"].es, times["H"].ls) == (29, 33)
    assert (times["N"].es, times["N"].ef) == (38, 44)


# -- link types and lags: each case is the constraint of the module docstring -------------


@pytest.mark.parametrize(
    ("a", "b", "link", "b_es", "length"),
    [
        # FS: B.es >= A.ef + lag
        (5, 3, Link("A", "B", FS, 0), 5, 8),
        (5, 3, Link("A", "B", FS, 2), 7, 10),
        (5, 3, Link("A", "B", FS, -2), 3, 6),  # a lead: B overlaps A's last two days
        # SS: B.es >= A.es + lag
        (5, 3, Link("A", "B", SS, 2), 2, 5),
        (5, 3, Link("A", "B", SS, 4), 4, 7),
        (5, 3, Link("A", "B", SS, -4), 0, 5),  # never before the project start
        # FF: B.ef >= A.ef + lag
        (5, 2, Link("A", "B", FF, 1), 4, 6),
        (5, 2, Link("A", "B", FF, -1), 2, 5),
        (1, 5, Link("A", "B", FF, 0), 0, 5),  # would start at -4: held at the start
        # SF: B.ef >= A.es + lag
        (4, 3, Link("A", "B", SF, 5), 2, 5),
        (4, 3, Link("A", "B", SF, 9), 6, 9),
        (4, 3, Link("A", "B", SF, 0), 0, 4),
    ],
)
def test_each_link_type_with_lags(a: int, b: int, link: Link, b_es: int, length: int) -> None:
    times = schedule({"A": a, "B": b}, [link])
    assert (times["A"].es, times["B"].es, times["B"].ef) == (0, b_es, b_es + b)
    assert max(t.ef for t in times.values()) == length


def test_late_dates_through_each_link_type() -> None:
    # A(4) -SS+1-> B(3) -FF+2-> C(2) -SF+6-> D(5); E(20) alone sets the finish at 20.
    durations = {"A": 4, "B": 3, "C": 2, "D": 5, "E": 20}
    links = [Link("A", "B", SS, 1), Link("B", "C", FF, 2), Link("C", "D", SF, 6)]
    t = schedule(durations, links)
    # forward: B.es = 0+1 = 1, ef 4; C.ef >= 4+2 = 6 -> es 4; D.ef >= C.es+6 = 10 -> es 5
    assert [(t[k].es, t[k].ef) for k in "ABCD"] == [(0, 4), (1, 4), (4, 6), (5, 10)]
    # backward from 20: D.lf 20, ls 15; C: es <= D.lf - 6 = 14 -> ls 14, lf 16;
    # B: ef <= C.lf - 2 = 14 -> ls 11; A: es <= B.ls - 1 = 10 -> ls 10
    assert [(t[k].ls, t[k].lf) for k in "ABCD"] == [(10, 14), (11, 14), (14, 16), (15, 20)]
    assert [t[k].total_float for k in "ABCDE"] == [10, 10, 10, 10, 0]
    assert critical_path(t) == ["E"]


def test_start_to_start_and_finish_to_finish_together() -> None:
    # A ladder: B starts 2 days after A starts and finishes 3 days after A finishes.
    t = schedule({"A": 10, "B": 6}, [Link("A", "B", SS, 2), Link("A", "B", FF, 3)])
    assert (t["B"].es, t["B"].ef) == (7, 13)
    assert t["A"].critical and t["B"].critical


def test_free_float() -> None:
    # A(2) and B(5) both feed C(1); A can slip 3 days without moving C.
    t = schedule({"A": 2, "B": 5, "C": 1, "D": 1}, [Link("A", "C"), Link("B", "C")])
    assert (t["A"].free_float, t["A"].total_float) == (3, 3)
    assert (t["B"].free_float, t["C"].free_float) == (0, 0)
    assert (t["D"].free_float, t["D"].total_float) == (5, 5)  # free up to the project end


# -- moving tasks (not_before), start and deadline --------------------------------------


def chain() -> tuple[dict[str, int], list[Link]]:
    durations = {"A": 3, "B": 2, "C": 4, "D": 1}
    return durations, [Link("A", "B"), Link("A", "C"), Link("B", "D"), Link("C", "D")]


def test_moving_a_task_moves_its_dependants() -> None:
    durations, links = chain()
    before = schedule(durations, links)
    assert (before["B"].es, before["D"].es) == (3, 7)
    moved = schedule(durations, links, not_before={"B": 5})  # within B's float of 2
    assert (moved["B"].es, moved["D"].es) == (5, 7)
    assert moved["B"].total_float == 0 and moved["B"].critical
    late = schedule(durations, links, not_before={"B": 9})  # beyond it: D and the end move
    assert (late["B"].es, late["D"].es, late["D"].ef) == (9, 11, 12)
    assert late["A"].es == 0 and late["C"].total_float == 4
    moved_start = schedule(durations, links, not_before={"A": 10})
    assert [moved_start[k].es for k in "ABCD"] == [10, 13, 13, 17]


def test_start_shifts_everything() -> None:
    durations, links = chain()
    base = schedule(durations, links)
    shifted = schedule(durations, links, start=100)
    for k in durations:
        es, ef, ls, lf, total = figures(base[k])
        assert figures(shifted[k]) == (es + 100, ef + 100, ls + 100, lf + 100, total)


def test_deadline_gives_float_or_negative_float() -> None:
    durations, links = chain()
    early = schedule(durations, links, finish=6)  # project needs 8
    assert [early[k].total_float for k in "ACD"] == [-2, -2, -2]
    assert all(early[k].critical for k in "ACD") and early["B"].total_float == 0
    assert early["D"].lf == 6
    roomy = schedule(durations, links, finish=10)
    assert [roomy[k].total_float for k in "ABCD"] == [2, 4, 2, 2]
    assert critical_path(roomy) == []


def test_empty_project_and_lonely_milestone() -> None:
    assert schedule({}, []) == {}
    t = schedule({"M": 0}, [], start=4)["M"]
    assert (t.es, t.ef, t.ls, t.lf, t.critical) == (4, 4, 4, 4, True)


# -- refused input ------------------------------------------------------------------------


def test_cycle_is_named() -> None:
    with pytest.raises(ScheduleCycleError) as caught:
        schedule(
            {"S": 1, "A": 1, "B": 2, "C": 3, "Z": 1},
            [Link("S", "A"), Link("A", "B"), Link("B", "C"), Link("C", "A", SS, 1), Link("C", "Z")],
        )
    err = caught.value
    assert isinstance(err, DomainError) and err.code == "projects.schedule_cycle"
    assert err.cycle == ["A", "B", "C", "A"]
    assert err.error.message("en", err.params) == "The task links form a cycle: A -> B -> C -> A."
    assert "A -> B -> C -> A" in err.error.message("zh", err.params)
    assert "循环" in err.error.message("zh", err.params)


def test_two_task_cycle_of_any_link_type() -> None:
    with pytest.raises(ScheduleCycleError) as caught:
        schedule({"A": 1, "B": 1}, [Link("B", "A", FF, -3), Link("A", "B", SF, 0)])
    assert caught.value.cycle == ["A", "B", "A"]


@pytest.mark.parametrize(
    ("links", "not_before", "missing", "referenced_by"),
    [
        ([Link("A", "X")], None, "X", "A"),
        ([Link("Y", "A")], None, "Y", "A"),
        ([], {"Q": 3}, "Q", "not_before"),
    ],
)
def test_unknown_task(
    links: list[Link], not_before: dict[str, int] | None, missing: str, referenced_by: str
) -> None:
    with pytest.raises(UnknownTaskError) as caught:
        schedule({"A": 1}, links, not_before=not_before)
    assert caught.value.code == "projects.unknown_task"
    assert (caught.value.task_id, caught.value.referenced_by) == (missing, referenced_by)
    assert missing in caught.value.error.message("zh", caught.value.params)


@pytest.mark.parametrize(
    ("durations", "links", "code"),
    [
        ({"A": -1}, [], "projects.negative_duration"),
        ({"A": 1.5}, [], "validation_error"),
        ({"A": True}, [], "validation_error"),
        ({"A": 1}, [Link("A", "A")], "projects.self_link"),
        ({"A": 1, "B": 1}, [Link("A", "B", lag=1.5)], "validation_error"),  # type: ignore[arg-type]
        ({"A": 1, "B": 1}, [Link("A", "B", "XX")], "validation_error"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_is_refused(durations: dict[str, int], links: list[Link], code: str) -> None:
    with pytest.raises(DomainError) as caught:
        schedule(durations, links)
    assert caught.value.code == code


def test_link_type_may_be_given_as_text() -> None:
    t = schedule({"A": 5, "B": 3}, [Link("A", "B", "SS", 2)])  # type: ignore[arg-type]
    assert t["B"].es == 2


# -- predecessor text and rows ------------------------------------------------------------


def test_parse_predecessors() -> None:
    assert parse_predecessors("A;B:SS+2;C:FF-1") == [("A", FS, 0), ("B", SS, 2), ("C", FF, -1)]
    assert parse_predecessors(" D:sf+0 ; E:FS-3;;F:SS ") == [
        ("D", SF, 0),
        ("E", FS, -3),
        ("F", SS, 0),
    ]
    assert parse_predecessors("") == []
    assert parse_predecessors("任务1;T-2:FF+10") == [("任务1", FS, 0), ("T-2", FF, 10)]


@pytest.mark.parametrize("text", ["A:XX+1", "A:SS+", "A:SS2", "A:", ":SS+1", "A:SS+1.5"])
def test_bad_predecessor_text(text: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_predecessors(text)
    assert caught.value.code == "projects.bad_predecessor"


def rows(*lines: tuple[str, str, str]) -> list[tuple[int, dict[str, str | None]]]:
    return [
        (n, {"id": i, "duration_days": d, "predecessors": p})
        for n, (i, d, p) in enumerate(lines, start=2)
    ]


def test_tasks_from_rows() -> None:
    table = tasks_from_rows(rows(("A", "3", ""), ("B", " 2 ", "A:SS+1"), ("C", "0", "A;B")))
    assert table.durations == {"A": 3, "B": 2, "C": 0}
    assert table.links == [Link("A", "B", SS, 1), Link("A", "C"), Link("B", "C")]
    assert table.lines == {"A": 2, "B": 3, "C": 4}


@pytest.mark.parametrize(
    ("lines", "code", "line"),
    [
        ((("A", "3", ""), ("A", "1", "")), "projects.duplicate_task", 3),
        ((("A", "x", ""),), "projects.bad_task_row", 2),
        ((("A", "2.5", ""),), "projects.bad_task_row", 2),
        ((("", "2", ""),), "projects.bad_task_row", 2),
        ((("A", "-2", ""),), "projects.negative_duration", 2),
        ((("A", "2", ""), ("B", "1", "A:QQ")), "projects.bad_predecessor", 3),
        ((("A", "2", ""), ("B", "1", "A;Z")), "projects.unknown_task", 3),
        ((("A", "2", "A"),), "projects.self_link", 2),
    ],
)
def test_bad_rows_name_their_line(
    lines: tuple[tuple[str, str, str], ...], code: str, line: int
) -> None:
    with pytest.raises(DomainError) as caught:
        tasks_from_rows(rows(*lines))
    assert (caught.value.code, caught.value.params["line"]) == (code, line)


# -- properties on random networks, checked against an independent solver ---------------

link_types = st.sampled_from([FS, SS, FF, SF])


@st.composite
def networks(draw: st.DrawFn) -> tuple[dict[str, int], list[Link], dict[str, int]]:
    n = draw(st.integers(1, 12))
    durations = {f"T{i}": draw(st.integers(0, 9)) for i in range(n)}
    names = list(durations)
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))
    links = [
        Link(names[min(a, b)], names[max(a, b)], draw(link_types), draw(st.integers(-5, 5)))
        for a, b in pairs
        if a != b
    ]
    order = draw(st.permutations(names))  # the input order is not the topological one
    not_before = draw(st.dictionaries(st.sampled_from(names), st.integers(0, 15), max_size=2))
    return {k: durations[k] for k in order}, links, not_before


def weight(link: Link, durations: dict[str, int]) -> int:
    w = link.lag
    if link.type in (FS, FF):
        w += durations[link.pred]
    if link.type in (FF, SF):
        w -= durations[link.succ]
    return w


@settings(max_examples=200, deadline=None)
@given(networks(), st.integers(-3, 3), st.one_of(st.none(), st.integers(0, 60)))
def test_matches_bellman_ford(
    net: tuple[dict[str, int], list[Link], dict[str, int]], start: int, finish: int | None
) -> None:
    durations, links, not_before = net
    times = schedule(durations, links, start=start, not_before=not_before, finish=finish)
    # Early starts: longest paths from a source (weights negated for Bellman-Ford).
    g = nx.MultiDiGraph()
    for k in durations:
        g.add_edge("<source>", k, weight=-max(start, not_before.get(k, start)))
    for link in links:
        g.add_edge(link.pred, link.succ, weight=-weight(link, durations))
    es = {k: -d for k, d in nx.single_source_bellman_ford_path_length(g, "<source>").items()}
    end = max(es[k] + d for k, d in durations.items()) if finish is None else finish
    # Late starts: end minus the longest path to a sink over the reversed links.
    r = nx.MultiDiGraph()
    for k, d in durations.items():
        r.add_edge("<sink>", k, weight=-d)
    for link in links:
        r.add_edge(link.succ, link.pred, weight=-weight(link, durations))
    tail = {k: -d for k, d in nx.single_source_bellman_ford_path_length(r, "<sink>").items()}
    for k, d in durations.items():
        t = times[k]
        assert (t.es, t.ef) == (es[k], es[k] + d)
        assert (t.ls, t.lf) == (end - tail[k], end - tail[k] + d)
        assert t.total_float == t.ls - t.es and t.critical == (t.total_float <= 0)
        assert t.free_float >= 0
        if finish is None:
            assert t.free_float <= t.total_float
    for link in links:  # early and late dates both satisfy every link
        w = weight(link, durations)
        assert times[link.succ].es >= times[link.pred].es + w
        assert times[link.succ].ls >= times[link.pred].ls + w
    if finish is None:
        assert critical_path(times)  # some chain sets the finish


@settings(max_examples=100, deadline=None)
@given(networks(), st.data())
def test_any_back_link_makes_a_named_cycle(
    net: tuple[dict[str, int], list[Link], dict[str, int]], data: st.DataObject
) -> None:
    durations, links, _ = net
    forward = [link for link in links if link.type == FS]
    assume(forward)
    closing = data.draw(st.sampled_from(forward))
    # A path back from the link's successor to its predecessor closes a cycle.
    back = Link(closing.succ, closing.pred, data.draw(link_types), data.draw(st.integers(-5, 5)))
    with pytest.raises(ScheduleCycleError) as caught:
        schedule(durations, [*links, back])
    cycle = caught.value.cycle
    assert cycle[0] == cycle[-1] and len(set(cycle)) == len(cycle) - 1 >= 2
    edges = {(link.pred, link.succ) for link in [*links, back]}
    assert all(pair in edges for pair in itertools.pairwise(cycle))
