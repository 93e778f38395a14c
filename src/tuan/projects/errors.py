"""Error codes of projects and their schedule."""

from tuan.shared.errors import code

SCHEDULE_CYCLE = code(
    "projects.schedule_cycle",
    422,
    "The task links form a cycle: {cycle}.",
    "任务依赖关系存在循环:{cycle}。",
)
UNKNOWN_TASK = code(
    "projects.unknown_task",
    422,
    "Unknown task {task_id}, referenced by {referenced_by}.",
    "未知任务 {task_id},被 {referenced_by} 引用。",
)
DUPLICATE_TASK = code(
    "projects.duplicate_task",
    422,
    "Task {task_id} is defined more than once (first on line {first_line}).",
    "任务 {task_id} 重复定义(首次出现在第 {first_line} 行)。",
)
NEGATIVE_DURATION = code(
    "projects.negative_duration",
    422,
    "Task {task_id} has a negative duration ({duration}).",
    "任务 {task_id} 的工期为负数({duration})。",
)
SELF_LINK = code(
    "projects.self_link",
    422,
    "Task {task_id} cannot depend on itself.",
    "任务 {task_id} 不能依赖自身。",
)
BAD_PREDECESSOR = code(
    "projects.bad_predecessor",
    422,
    "Cannot read the predecessor {text!r}: {detail}",
    "无法解析前置任务 {text!r}:{detail}",
)

# -- controls: goals, budget, risks, retrospectives (tuan.projects.goals/budget/risks/retros) --
GOAL_INVALID = code(
    "projects.goal_invalid", 422, "The goal is not valid: {detail}", "目标设置无效:{detail}"
)
BUDGET_INVALID = code(
    "projects.budget_invalid", 422, "The budget entry is not valid: {detail}", "预算无效:{detail}"
)
SPEND_IMPORT_INVALID = code(
    "projects.spend_import_invalid",
    422,
    "Row {row} of the spend file is not valid: {detail}. Nothing was imported.",
    "支出文件第 {row} 行无效:{detail}。未导入任何数据。",
)
RISK_INVALID = code(
    "projects.risk_invalid", 422, "The risk is not valid: {detail}", "风险设置无效:{detail}"
)
TRIGGER_INVALID = code(
    "projects.trigger_invalid",
    422,
    "The risk trigger is not valid: {detail}",
    "风险触发条件无效:{detail}",
)
RETRO_INVALID = code(
    "projects.retro_invalid", 422, "The retrospective is not valid: {detail}", "复盘无效:{detail}"
)
BAD_TASK_ROW = code(
    "projects.bad_task_row",
    422,
    "The task list is not valid: {detail}",
    "任务清单无效:{detail}",
)

# -- projects, tasks, SOP templates, calendars, CSV (tuan.projects.service/sop/ical/csvio) ----
BAD_COLUMNS = code(
    "projects.bad_columns",
    422,
    "The kanban columns are not valid: {detail}",
    "看板列设置无效:{detail}",
)
COLUMN_IN_USE = code(
    "projects.column_in_use",
    409,
    "Column {column} still holds {count} tasks; move them first.",
    "看板列 {column} 中仍有 {count} 个任务,请先移走。",
)
UNKNOWN_STATUS = code(
    "projects.unknown_status",
    422,
    "Status {status} is not a column of this project ({allowed}).",
    "状态 {status} 不是本项目的看板列({allowed})。",
)
BAD_PRIORITY = code(
    "projects.bad_priority",
    422,
    "Priority {priority} is not one of {allowed}.",
    "优先级 {priority} 无效,可选:{allowed}。",
)
BAD_LINK_TYPE = code(
    "projects.bad_link_type",
    422,
    "Link type {type} is not one of FS, SS, FF, SF.",
    "依赖类型 {type} 无效,可选:FS、SS、FF、SF。",
)
BAD_TASK_WINDOW = code(
    "projects.bad_task_window",
    422,
    "A task cannot be due ({due_at}) before it starts ({starts_at}).",
    "任务的截止时间({due_at})不能早于开始时间({starts_at})。",
)
BAD_OFFSET = code(
    "projects.bad_offset",
    422,
    "Cannot read the offset {text!r}: write it like T-7d, T-2h, T+0 or T+1d2h.",
    "无法解析时间偏移 {text!r}:请写成 T-7d、T-2h、T+0 或 T+1d2h。",
)
SOP_INVALID = code(
    "projects.sop_invalid",
    422,
    "The SOP template is not valid: {detail}",
    "SOP 模板无效:{detail}",
)
NOT_A_MEMBER = code(
    "projects.not_a_member",
    422,
    "User {user_id} is not a member of project {project_id}.",
    "用户 {user_id} 不是项目 {project_id} 的成员。",
)
LINK_ACROSS_PROJECTS = code(
    "projects.link_across_projects",
    422,
    "Tasks {pred} and {succ} belong to different projects.",
    "任务 {pred} 与 {succ} 不属于同一个项目。",
)
LINK_EXISTS = code(
    "projects.link_exists",
    409,
    "Task {succ} already depends on {pred}.",
    "任务 {succ} 已依赖 {pred}。",
)
MOVE_NEEDS_DATES = code(
    "projects.move_needs_dates",
    422,
    "Task {task_id} has no start time to move; set its start first.",
    "任务 {task_id} 没有开始时间,无法移动;请先设置开始时间。",
)
BAD_URL = code(
    "projects.bad_url",
    422,
    "The link {url!r} is not an http(s) URL.",
    "链接 {url!r} 不是 http(s) 地址。",
)
CSV_INVALID = code(
    "projects.csv_invalid",
    422,
    "Line {line} of the CSV file is not valid: {detail}. Nothing was imported.",
    "CSV 文件第 {line} 行无效:{detail}。未导入任何数据。",
)
FEED_TOKEN_INVALID = code(
    "projects.feed_token_invalid",
    404,
    "No calendar feed with this address.",
    "该日历订阅地址不存在。",
)
PROJECT_ARCHIVED = code(
    "projects.archived",
    409,
    "Project {project_id} is archived; restore it to change it.",
    "项目 {project_id} 已归档,恢复后才能修改。",
)
