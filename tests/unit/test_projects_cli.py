"""``tuan projects schedule``: the CSV in, one JSON object per task out, clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tuan.entrypoints.cli.main import app

runner = CliRunner()

# Taylor, Introduction to Management Science, ch. 8 (see tests/unit/test_schedule.py), as
# activity-on-node: published ES, EF, LS, LF and slack per activity.
TAYLOR = """id,duration_days,predecessors
1-2,7,
1-3,10,
2-4,6,1-2
3-4,5,1-3
3-5,4,1-3
4-5,3,2-4;3-4
5-6,2,3-5;4-5
"""
PUBLISHED = {
    "1-2": (0, 7, 2, 9, 2),
    "1-3": (0, 10, 0, 10, 0),
    "2-4": (7, 13, 9, 15, 2),
    "3-4": (10, 15, 10, 15, 0),
    "3-5": (10, 14, 14, 18, 4),
    "4-5": (15, 18, 15, 18, 0),
    "5-6": (18, 20, 18, 20, 0),
}


def run(tmp_path: Path, body: str, *args: str) -> Any:
    path = tmp_path / "tasks.csv"
    path.write_text(body, encoding="utf-8")
    return runner.invoke(app, ["projects", "schedule", "--tasks", str(path), *args])


def lines_of(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_json_lines_of_a_textbook_network(tmp_path: Path) -> None:
    result = run(tmp_path, TAYLOR, "--json")
    assert result.exit_code == 0, result.output
    records = lines_of(result.stdout)
    assert [r["id"] for r in records] == list(PUBLISHED)  # the file's order
    for r in records:
        es, ef, ls, lf, slack = PUBLISHED[r["id"]]
        assert (r["es"], r["ef"], r["ls"], r["lf"], r["total_float"]) == (es, ef, ls, lf, slack)
        assert r["critical"] == (slack == 0)
        assert "es_date" not in r  # plain day numbers without --calendar


def test_table_output(tmp_path: Path) -> None:
    result = run(tmp_path, TAYLOR)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "✱" in rows["1-3"] and "✱" not in rows["1-2"]
    assert "1-3 → 3-4 → 4-5 → 5-6" in result.stdout and "20" in result.stdout


def test_link_types_and_the_chinese_calendar(tmp_path: Path) -> None:
    body = "id,duration_days,predecessors\nA,3,\nB,2,A:SS+1\nC,4,A\nD,1,B;C:FF+2\nM,0,D\n"
    result = run(tmp_path, body, "--json", "--calendar", "cn", "--start", "2025-01-24")
    assert result.exit_code == 0, result.output
    r = {x["id"]: x for x in lines_of(result.stdout)}
    # D.ef >= C.ef + 2 = 9 -> es 8; working days from Fri 24 Jan 2025: 0 = 24 Jan, 1 = Sun
    # 26 Jan (调休), 2 = 27 Jan, then 春节 until 4 Feb: 3 = 5 Feb, ..., 8 = 11 Feb.
    assert (r["B"]["es"], r["D"]["es"], r["D"]["ef"]) == (1, 8, 9)
    assert (r["A"]["es_date"], r["A"]["ef_date"]) == ("2025-01-24", "2025-01-27")
    assert (r["C"]["es_date"], r["C"]["ef_date"]) == ("2025-02-05", "2025-02-08")  # Sat worked
    assert r["D"]["es_date"] == r["D"]["ef_date"] == "2025-02-11"
    assert r["M"]["es"] == r["M"]["ef"] == 9 and r["M"]["es_date"] == "2025-02-12"
    assert result.stderr == ""


def test_calendar_none_and_weekends(tmp_path: Path) -> None:
    body = "id,duration_days,predecessors\nA,3,\nB,2,A\n"
    every = run(tmp_path, body, "--json", "--calendar", "none", "--start", "2025-01-24")
    assert [x["ef_date"] for x in lines_of(every.stdout)] == ["2025-01-26", "2025-01-28"]
    weekdays = run(tmp_path, body, "--json", "--calendar", "weekends", "--start", "2025-01-24")
    assert [x["ef_date"] for x in lines_of(weekdays.stdout)] == ["2025-01-28", "2025-01-30"]


def test_years_without_holiday_data_warn(tmp_path: Path) -> None:
    result = run(tmp_path, "id,duration_days,predecessors\nA,3,\n", "--calendar", "cn",
                 "--start", "2031-03-03", "--json")  # fmt: skip
    assert result.exit_code == 0
    assert lines_of(result.stdout)[0]["ef_date"] == "2031-03-05"
    assert "no Chinese holiday data for 2031" in result.stderr


@pytest.mark.parametrize(
    ("body", "args", "message"),
    [
        ("id,duration_days,predecessors\nA,1,C\nB,1,A\nC,1,B\n", [], "A -> B -> C -> A"),
        ("id,duration_days,predecessors\nA,1,\nB,1,A;Z\n", [], "line 3: Unknown task Z"),
        ("id,duration_days,predecessors\nA,1,\nA,2,\n", [], "line 3: Task A is defined"),
        ("id,duration_days,predecessors\nA,x,\n", [], "line 2: "),
        ("id,duration_days,predecessors\nA,-3,\n", [], "line 2: Task A has a negative"),
        ("id,duration_days,predecessors\nA,1,\nB,1,A:XY+1\n", [], "line 3: Cannot read"),
        ("id,duration_days,predecessors\nA,1,,extra\n", [], "line 2: more cells"),
        ("id,duration\nA,1\n", [], "missing column(s) duration_days, predecessors"),
        ("id,duration_days,predecessors\nA,1,\n", ["--calendar", "moon"], "--calendar 'moon'"),
        ("id,duration_days,predecessors\nA,1,\n", ["--start", "2025-01-01"], "needs --calendar"),
        (
            "id,duration_days,predecessors\nA,1,\n",
            ["--calendar", "cn", "--start", "2025-13-01"],
            "is not a date",
        ),
    ],
)
def test_errors_are_one_line_and_exit_2(
    tmp_path: Path, body: str, args: list[str], message: str
) -> None:
    result = run(tmp_path, body, "--json", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["projects", "schedule", "--tasks", str(tmp_path / "nope.csv"), "--json"]
    )
    assert result.exit_code == 2 and "cannot read" in result.stderr
