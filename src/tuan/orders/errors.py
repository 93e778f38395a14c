"""Error codes of orders."""

from tuan.shared.errors import code

ORDER_NOT_PAYABLE = code(
    "order_not_payable",
    409,
    "Order {order_id} cannot be paid now (it is {status}).",
    "订单 {order_id} 当前无法支付(状态:{status})。",
)
PAYMENT_DEADLINE_PASSED = code(
    "payment_deadline_passed",
    409,
    "The payment deadline of order {order_id} has passed.",
    "订单 {order_id} 已超过支付期限。",
)
ORDER_NOT_CANCELLABLE = code(
    "order_not_cancellable",
    409,
    "Order {order_id} cannot be cancelled (it is {status}); only unpaid orders can.",
    "订单 {order_id} 无法取消(状态:{status}),只能取消未支付的订单。",
)
NOT_PRESALE = code(
    "not_presale", 409, "Order {order_id} is not a presale order.", "订单 {order_id} 不是预售订单。"
)
BALANCE_NOT_DUE = code(
    "balance_not_due",
    409,
    "Order {order_id} has no balance to pay now (it is {status}).",
    "订单 {order_id} 当前没有待付尾款(状态:{status})。",
)
BALANCE_WINDOW_NOT_OPEN = code(
    "balance_window_not_open",
    409,
    "The balance of order {order_id} can be paid from {opens_at}.",
    "订单 {order_id} 的尾款自 {opens_at} 起才可支付。",
)
BALANCE_WINDOW_CLOSED = code(
    "balance_window_closed",
    409,
    "The balance window of order {order_id} closed at {closes_at}.",
    "订单 {order_id} 的尾款支付已于 {closes_at} 截止。",
)
