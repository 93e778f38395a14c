"""Error codes of accounts: logins, sessions, users."""

from __future__ import annotations

from tuan.shared.errors import code

BAD_CREDENTIALS = code(
    "bad_credentials",
    401,
    "The username or password is wrong, or the account is disabled.",
    "用户名或密码错误,或账号已停用。",
)
USERNAME_TAKEN = code(
    "username_taken",
    409,
    "The username {username} is already taken.",
    "用户名 {username} 已被占用。",
)
SESSION_EXPIRED = code(
    "session_expired",
    401,
    "Your session has ended; please sign in again.",
    "登录已过期,请重新登录。",
)
CSRF_FAILED = code(
    "csrf_failed",
    403,
    "The form is out of date or did not come from this site; reload the page and try again.",
    "表单已过期或来源不明,请刷新页面后重试。",
)
TOO_MANY_LOGINS = code(
    "too_many_logins",
    429,
    "Too many failed sign-ins for this account; try again in {minutes} minutes.",
    "该账号登录失败次数过多,请 {minutes} 分钟后再试。",
)
