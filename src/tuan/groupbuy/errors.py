"""Error codes of campaigns, groups and joins."""

from tuan.shared.errors import code

CAMPAIGN_INVALID = code(
    "campaign_invalid", 422, "The campaign is not valid: {detail}", "活动设置无效:{detail}"
)
PRESALE_INVALID = code(
    "presale_invalid", 422, "The presale settings are not valid: {detail}", "预售设置无效:{detail}"
)
CAMPAIGN_NOT_LIVE = code(
    "campaign_not_live",
    409,
    "Campaign {campaign_id} is not live (it is {status}).",
    "活动 {campaign_id} 当前不在进行中(状态:{status})。",
)
CAMPAIGN_NOT_EDITABLE = code(
    "campaign_not_editable",
    409,
    "Campaign {campaign_id} is {status}; only draft or scheduled campaigns can be edited.",
    "活动 {campaign_id} 状态为 {status},只有草稿或待开始的活动可以修改。",
)
ITEM_NOT_IN_CAMPAIGN = code(
    "item_not_in_campaign",
    422,
    "SKU {sku_id} is not sold in campaign {campaign_id}.",
    "SKU {sku_id} 不在活动 {campaign_id} 中。",
)
COMMUNITY_NOT_ALLOWED = code(
    "community_not_allowed",
    403,
    "Campaign {campaign_id} is not open to community {community_id}.",
    "活动 {campaign_id} 未向小区 {community_id} 开放。",
)
OUT_OF_STOCK = code(
    "out_of_stock",
    409,
    "Not enough stock of SKU {sku_id} for {quantity} unit(s).",
    "SKU {sku_id} 库存不足,无法购买 {quantity} 件。",
)
CAMPAIGN_CAP_REACHED = code(
    "campaign_cap_reached",
    409,
    "The campaign's stock for SKU {sku_id} is used up.",
    "本活动中 SKU {sku_id} 的限量已售罄。",
)
PURCHASE_LIMIT = code(
    "purchase_limit_exceeded",
    409,
    "At most {limit} unit(s) per customer in this campaign.",
    "本活动每人限购 {limit} 件。",
)
OPEN_GROUP_LIMIT = code(
    "open_group_limit",
    409,
    "You already lead {limit} open group(s) in this campaign.",
    "您在本活动中已有 {limit} 个进行中的团。",
)
UNPAID_ORDER_EXISTS = code(
    "unpaid_order_exists",
    409,
    "You have an unpaid order in this campaign; pay or cancel it first.",
    "您在本活动中有未支付的订单,请先支付或取消。",
)
ALREADY_IN_GROUP = code(
    "already_in_group", 409, "You are already in group {group_id}.", "您已在团 {group_id} 中。"
)
GROUP_NOT_JOINABLE = code(
    "group_not_joinable",
    409,
    "Group {group_id} can no longer be joined ({reason}).",
    "团 {group_id} 已无法加入({reason})。",
)
INVALID_QUANTITY = code(
    "invalid_quantity", 422, "Quantity must be at least 1.", "购买数量至少为 1。"
)
