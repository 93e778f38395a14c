#!/usr/bin/env bash
# Serve the demo: a local SMTP sink (aiosmtpd, accepts and discards) on TUAN_SMTP_PORT so that
# the demo's queued e-mails are really sent over SMTP, then `tuan serve` in the foreground.
# The sink stops with the server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
host=${HOST:-127.0.0.1}
port=${PORT:-8000}
smtp_port=${TUAN_SMTP_PORT:-8025}
export TUAN_SMTP_HOST=127.0.0.1 TUAN_SMTP_PORT="$smtp_port"
.venv/bin/python -m aiosmtpd -n -c aiosmtpd.handlers.Sink -l "127.0.0.1:$smtp_port" &
sink=$!
trap 'kill "$sink" 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 50); do  # wait until the sink listens, so that no first delivery is refused
    (exec 3<>"/dev/tcp/127.0.0.1/$smtp_port") 2>/dev/null && break
    sleep 0.1
done
echo "demo: SMTP sink on 127.0.0.1:$smtp_port (pid $sink)"
echo "demo: console http://$host:$port/console (admin / tuan-demo) · storefront http://$host:$port/s · API docs http://$host:$port/docs"
.venv/bin/tuan serve --host "$host" --port "$port" --no-migrate
