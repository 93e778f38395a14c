"""Error codes of channel spend (渠道投放)."""

from tuan.shared.errors import code

SPEND_INVALID = code(
    "channel_spend_invalid",
    422,
    "The spend entry is not valid: {field}: {reason_en}.",
    "投放记录无效:{field}:{reason_zh}。",
)
SPEND_DUPLICATE = code(
    "channel_spend_duplicate",
    409,
    "Spend for {channel} from {period_start} to {period_end} is already entered ({spend_id});"
    " correct that entry instead.",
    "渠道 {channel} 在 {period_start} 至 {period_end} 的投放已录入({spend_id}),请修改该记录。",
)
SPEND_CSV_INVALID = code(
    "channel_spend_csv_invalid",
    422,
    "The spend file was not imported: {count} row(s) have errors (first: {first}). Nothing was"
    " changed.",
    "投放文件未导入:{count} 行有错误(第一个:{first})。未做任何改动。",
)
TARGET_INVALID = code(
    "channel_target_invalid",
    422,
    "The target ROI is not valid: {detail}",
    "目标 ROI 无效:{detail}",
)
