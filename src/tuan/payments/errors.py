"""Error codes of payments and refunds."""

from tuan.shared.errors import code

BAD_SIGNATURE = code(
    "bad_signature",
    401,
    "The callback's signature is missing, wrong or too old.",
    "回调签名缺失、错误或已过期。",
)
MALFORMED_CALLBACK = code(
    "malformed_callback", 400, "The callback body is not valid: {detail}", "回调内容无效:{detail}"
)
UNKNOWN_PAYMENT = code("unknown_payment", 404, "No payment {ref} is known.", "未找到支付 {ref}。")
AMOUNT_MISMATCH = code(
    "amount_mismatch",
    409,
    "The provider reports {reported} cents for payment {ref}, expected {expected}.",
    "支付 {ref} 的金额不符:渠道报告 {reported} 分,应为 {expected} 分。",
)
UNKNOWN_PROVIDER = code(
    "unknown_provider",
    422,
    "Payment provider {provider} is not configured.",
    "未配置支付渠道 {provider}。",
)
REFUND_INVALID = code(
    "refund_invalid", 422, "The refund is not valid: {detail}", "退款无效:{detail}"
)
REFUND_EXCEEDS = code(
    "refund_exceeds_paid",
    409,
    "Refunding {amount} cents would exceed what is left to refund ({left} cents).",
    "退款 {amount} 分超过可退金额({left} 分)。",
)
REFUND_NO_REUSED = code(
    "refund_no_reused",
    409,
    "Refund id {refund_no} was already used for this order with another amount.",
    "退款单号 {refund_no} 已用于本订单的另一笔不同金额的退款。",
)
ORDER_NOT_REFUNDABLE = code(
    "order_not_refundable",
    409,
    "Order {order_id} cannot be refunded by hand while it is {status}.",
    "订单 {order_id} 在 {status} 状态下不能手动退款。",
)
CHECKOUT_INVALID = code(
    "checkout_invalid", 400, "This checkout link is invalid or expired.", "支付链接无效或已过期。"
)
