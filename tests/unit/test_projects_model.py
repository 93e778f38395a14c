"""Rules of campaign projects: SOP offsets, dating steps from a launch, kanban columns and the
task state machine, the default template, CSV reading and the iCal builder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import icalendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuan.projects import csvio, ical, model
from tuan.projects.sop import DEFAULT_TEMPLATE
from tuan.shared.errors import DomainError

LAUNCH = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("T-7d", -7 * 1440),
        ("T−2d", -2 * 1440),  # the minus sign of the source documents
        ("T-2h", -120),
        ("T+0", 0),
        ("+0", 0),
        ("T+3d", 3 * 1440),
        ("t+1d2h", 1560),
        ("-30m", -30),
        ("2h", 120),
    ],
)
def test_offsets_read_as_minutes_from_launch(text: str, minutes: int) -> None:
    assert model.parse_offset(text) == minutes


@pytest.mark.parametrize("text", ["", "T", "T-", "yesterday", "T-2x", "T+-1d", "7"])
def test_bad_offsets_are_refused(text: str) -> None:
    with pytest.raises(DomainError) as info:
        model.parse_offset(text)
    assert info.value.code == "projects.bad_offset"


@given(st.integers(min_value=-400 * 1440, max_value=400 * 1440))
def test_offsets_format_and_read_back(minutes: int) -> None:
    assert model.parse_offset(model.format_offset(minutes)) == minutes


def test_the_default_template_dates_its_steps_from_the_launch() -> None:
    DEFAULT_TEMPLATE.validate()
    dated = model.date_steps(DEFAULT_TEMPLATE.steps, LAUNCH, LAUNCH + timedelta(days=2))
    by_key = {(d.key, d.occurrence): d for d in dated}
    assert by_key[("choose_products", 0)].starts_at == LAUNCH - timedelta(days=7)
    assert by_key[("train_customer_service", 0)].starts_at == LAUNCH - timedelta(days=2)
    assert by_key[("listing_check", 0)].starts_at == LAUNCH - timedelta(hours=2)
    assert by_key[("listing_check", 0)].due_at == LAUNCH - timedelta(hours=1)
    assert by_key[("launch", 0)].starts_at == by_key[("launch", 0)].due_at == LAUNCH
    assert by_key[("retrospective", 0)].starts_at == LAUNCH + timedelta(days=3)
    standups = sorted(n for key, n in by_key if key == "daily_standup")
    assert standups == [0, 1]  # two live days
    # the template's links agree with its offsets: every FS successor starts after its pred
    for link in DEFAULT_TEMPLATE.links:
        assert by_key[(link.succ, 0)].starts_at >= by_key[(link.pred, 0)].due_at, link


@given(st.integers(min_value=1, max_value=30 * 24))
def test_one_standup_per_live_day(hours: int) -> None:
    ends = LAUNCH + timedelta(hours=hours)
    dated = model.date_steps(DEFAULT_TEMPLATE.steps, LAUNCH, ends)
    starts = [d.starts_at for d in dated if d.key == "daily_standup"]
    assert all(LAUNCH <= s < ends for s in starts)
    assert len(starts) == len({s.date() for s in starts})
    # none missing: the day after the last one is past the end
    assert not starts or starts[-1] + timedelta(days=1) >= ends


def test_templates_with_unknown_steps_roles_or_self_links_are_refused() -> None:
    step = model.SopStep("a", "A", 0, 60, "operator")
    with pytest.raises(DomainError, match="unknown role"):
        model.validate_template([model.SopStep("a", "A", 0, 60, "boss")], [])
    with pytest.raises(DomainError, match="unknown step"):
        model.validate_template([step], [model.SopLink("a", "b")])
    with pytest.raises(DomainError, match="to itself"):
        model.validate_template([step], [model.SopLink("a", "a")])
    with pytest.raises(DomainError, match="unique"):
        model.validate_template([step, step], [])


def test_columns_need_a_todo_and_a_done_column_and_unique_keys() -> None:
    model.validate_columns(model.DEFAULT_COLUMNS)
    with pytest.raises(DomainError) as info:
        model.validate_columns(model.DEFAULT_COLUMNS[:2])
    assert info.value.code == "projects.bad_columns"
    todo = model.KanbanColumn("todo", "待办", "To do", "todo")
    with pytest.raises(DomainError, match="unique"):
        model.validate_columns([todo, todo, model.KanbanColumn("d", "完成", "Done", "done")])
    with pytest.raises(DomainError, match="bad key"):
        model.validate_columns([todo, model.KanbanColumn("Done!", "完成", "Done", "done")])


@pytest.mark.parametrize(
    ("current", "target", "ok"),
    [
        ("todo", "in_progress", True),
        ("todo", "done", True),
        ("in_progress", "todo", True),
        ("done", "in_progress", True),
        ("done", "cancelled", False),
        ("cancelled", "done", False),
        ("cancelled", "todo", True),
        ("done", "done", True),
    ],
)
def test_task_state_machine(current: str, target: str, ok: bool) -> None:
    if ok:
        model.check_transition(current, target)
    else:
        with pytest.raises(DomainError) as info:
            model.check_transition(current, target)
        assert info.value.code == "illegal_transition"


def test_a_task_cannot_be_due_before_it_starts() -> None:
    with pytest.raises(DomainError) as info:
        model.check_window(LAUNCH, LAUNCH - timedelta(minutes=1))
    assert info.value.code == "projects.bad_task_window"
    model.check_window(LAUNCH, LAUNCH)


def test_tuan_csv_rows_read_times_in_the_zone_and_links_with_lags() -> None:
    text = (
        "key,title,starts_at,due_at,priority,predecessors,labels\n"
        "A-1,选品,2026-12-01 09:00,2026-12-01T12:00+08:00,High,,SOP;生鲜\n"
        "A-2,定价,2026-12-01 13:00,,,A-1:SS+30,\n"
    )
    fmt, rows = csvio.read_rows(text, "Asia/Shanghai")
    assert fmt == "tuan"
    assert rows[0].starts_at == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    assert rows[0].due_at == datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    assert rows[0].priority == "high" and rows[0].labels == ("SOP", "生鲜")
    assert rows[1].predecessors == (("A-1", "SS", 30),)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("key,title\nA,\n", 2),
        ("key,title,priority\nA,x,\nB,y,urgent\n", 3),
        ("key,title,due_at\nA,x,tomorrow\n", 2),
        ("key,title,predecessors\nA,x,Z\n", 2),
        ("key,title\nA,x\nA,y\n", 3),
    ],
)
def test_bad_csv_lines_are_named(text: str, line: int) -> None:
    with pytest.raises(DomainError) as info:
        csvio.read_rows(text, "Asia/Shanghai")
    assert info.value.code == "projects.csv_invalid"
    assert info.value.params["line"] == line


def test_ical_events_are_utc_with_stable_uids() -> None:
    task = {
        "id": "tsk_1",
        "key": "T-1",
        "project_id": "prj_1",
        "status": "todo",
        "title": "上架检查",
        "description": "检查价格",
        "starts_at": LAUNCH - timedelta(hours=2),
        "due_at": LAUNCH - timedelta(hours=1),
        "created_at": LAUNCH - timedelta(days=9),
        "updated_at": LAUNCH - timedelta(days=8),
    }
    done = {**task, "id": "tsk_2", "status": "done", "starts_at": None}
    milestone = {"id": "mst_1", "name": "开团", "due_at": LAUNCH, "done_at": None}
    body = ical.build_calendar(
        "x",
        [task, done],
        [milestone],
        categories={("prj_1", "todo"): "todo", ("prj_1", "done"): "done"},
        base_url="https://tuan.example.com/",
        now=LAUNCH,
    )
    cal = icalendar.Calendar.from_ical(body)
    events = {str(e["uid"]): e for e in cal.walk("VEVENT")}
    first = events["tsk_1@tuan.example.com"]
    assert first.decoded("dtstart") == LAUNCH - timedelta(hours=2)
    assert first.decoded("dtstart").utcoffset() == timedelta(0)
    assert str(first["summary"]) == "[T-1] 上架检查"
    assert "https://tuan.example.com/console/projects/prj_1/tasks/tsk_1" in str(
        first["description"]
    )
    zero = events["tsk_2@tuan.example.com"]  # due time only: a zero-length event, marked done
    assert zero.decoded("dtstart") == zero.decoded("dtend") == LAUNCH - timedelta(hours=1)
    assert str(zero["summary"]).startswith("✓")
    day = events["mst_1@tuan.example.com"]
    assert day.decoded("dtstart") == datetime(2026, 12, 1).date()
