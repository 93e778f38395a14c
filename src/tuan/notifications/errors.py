"""Error codes of notifications and webhook endpoints."""

from tuan.shared.errors import code

WEBHOOK_URL_INVALID = code(
    "webhook_url_invalid",
    422,
    "The webhook URL is not valid: {detail}",
    "Webhook 地址无效:{detail}",
)
WEBHOOK_EVENT_TYPE_UNKNOWN = code(
    "webhook_event_type_unknown",
    422,
    "Unknown event type {event_type}.",
    "未知的事件类型 {event_type}。",
)
NOTIFICATION_NOT_RETRYABLE = code(
    "notification_not_retryable",
    409,
    "Notification {notification_id} is {status}; only dead or failed ones can be sent again.",
    "通知 {notification_id} 状态为 {status},只有发送失败的通知可以重新发送。",
)
