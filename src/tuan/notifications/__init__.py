"""Notifications: outbox events to customers (e-mail, in-app) and to webhook endpoints.

- ``store``: tables ``notifications`` (the sending queue) and ``webhook_endpoints``.
- ``templates``: subjects and plain-text bodies in zh-CN (default) and en.
- ``service``: ``dispatch_outbox`` (a write command: events to queued rows) and ``send_due``
  (claims due rows with a lease, sends them, records the outcome with back-off).
- ``delivery``: SMTP and HTTP, one attempt each. ``model``: retry rules and signatures.

Webhook receivers get ``POST`` with a JSON body ``{"id", "type", "aggregate_id", "created_at",
"data"}`` and the headers ``Tuan-Event`` (the type), ``Tuan-Delivery`` (stable across retries:
use it to drop duplicates), ``Tuan-Timestamp`` and ``Tuan-Signature: t=<unix>,v1=<hex>``, where
``hex = HMAC-SHA256(secret, f"{t}.{raw body}")``. Verify before trusting the body::

    from tuan.notifications.model import verify_webhook_signature
    ok = verify_webhook_signature(secret, headers["Tuan-Signature"], raw_body, now)

Answer 2xx when done. A 4xx other than 408/429 stops the retries; anything else is retried
with back-off (30 s doubling to 1 h, eight attempts in all).
"""
