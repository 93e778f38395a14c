"""Error codes of the storefront's customer sign-in."""

from tuan.shared.errors import code

SIGN_IN_THROTTLED = code(
    "sign_in_throttled",
    429,
    "Too many codes requested; try again in {wait} seconds.",
    "验证码请求过于频繁,请 {wait} 秒后再试。",
)
PHONE_INVALID = code(
    "phone_invalid",
    422,
    "Enter an 11-digit mainland mobile number.",
    "请输入 11 位手机号码。",
)
