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
