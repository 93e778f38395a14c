#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests.
#
#   scripts/pg.sh start    init + start a cluster on 127.0.0.1:$TUAN_PG_PORT, create tuan_test
#   scripts/pg.sh stop     stop it and delete its data directory
#   scripts/pg.sh url      print the SQLAlchemy URL of the tuan_test database
#   scripts/pg.sh status   exit 0 if it is running
#
# Environment:
#   TUAN_PG_PORT   port to listen on (default 55432)
#   TUAN_PG_DIR    data directory (default /tmp/tuan-pg-$TUAN_PG_PORT); deleted by `stop`
#   TUAN_PG_BIN    directory of initdb/pg_ctl (default: newest /usr/lib/postgresql/*/bin)
#
# PostgreSQL refuses to run as root: as root, the binaries run as the `postgres` user (runuser)
# and the data directory is owned by it. As any other user they run directly.
# The cluster trusts every local connection and runs with fsync off: it is for tests only.
set -euo pipefail

PORT="${TUAN_PG_PORT:-55432}"
DIR="${TUAN_PG_DIR:-/tmp/tuan-pg-${PORT}}"
DB_USER="tuan"
DB_NAME="tuan_test"
HOST="127.0.0.1"

die() {
    echo "pg.sh: error: $*" >&2
    exit 1
}

info() {
    echo "pg.sh: $*" >&2
}

find_bin() {
    if [ -n "${TUAN_PG_BIN:-}" ]; then
        [ -x "${TUAN_PG_BIN}/pg_ctl" ] || die "TUAN_PG_BIN=${TUAN_PG_BIN} has no pg_ctl"
        echo "${TUAN_PG_BIN}"
        return
    fi
    local best="" best_ver=0 d ver
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "${d}/pg_ctl" ] && [ -x "${d}/initdb" ] || continue
        ver="$(basename "$(dirname "${d}")")"
        case "${ver}" in
            '' | *[!0-9]*) continue ;;  # only numeric major versions
        esac
        if [ "${ver}" -gt "${best_ver}" ]; then
            best_ver="${ver}"
            best="${d}"
        fi
    done
    if [ -z "${best}" ] && command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        best="$(dirname "$(command -v pg_ctl)")"
    fi
    [ -n "${best}" ] || die "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin and PATH); run 'make system-deps' (Debian package 'postgresql')"
    echo "${best}"
}

# Runs a PostgreSQL binary as the user that owns the cluster.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user; install the Debian package 'postgresql' (make system-deps)"
        command -v runuser >/dev/null 2>&1 || die "running as root but 'runuser' (util-linux) is missing"
        # cd: the postgres user may not be allowed into the caller's working directory.
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

is_running() {
    # Our cluster is running: its data directory is there and pg_ctl says so.
    [ -f "${DIR}/PG_VERSION" ] || return 1
    as_pg "${BIN}/pg_ctl" -D "${DIR}" status >/dev/null 2>&1
}

port_in_use() {
    # Anything accepting TCP connections there, PostgreSQL or not.
    timeout 3 bash -c "exec 3<>/dev/tcp/${HOST}/${PORT}" 2>/dev/null
}

psql_q() {
    as_pg "${BIN}/psql" -X -q -v ON_ERROR_STOP=1 -h "${HOST}" -p "${PORT}" -U "${DB_USER}" -d postgres -tAc "$1"
}

ensure_db() {
    local exists
    exists="$(psql_q "SELECT 1 FROM pg_database WHERE datname = '${DB_NAME}'")" \
        || die "cannot connect to the cluster on ${HOST}:${PORT} as ${DB_USER}; see ${DIR}/log"
    if [ "${exists}" != "1" ]; then
        as_pg "${BIN}/createdb" -h "${HOST}" -p "${PORT}" -U "${DB_USER}" "${DB_NAME}" \
            || die "createdb ${DB_NAME} failed; see ${DIR}/log"
    fi
}

pick_locale() {
    # C.UTF-8 keeps sorting byte-wise yet knows non-ASCII characters (upper/lower of 团, é…).
    if command -v locale >/dev/null 2>&1 && locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then
        echo "C.UTF-8"
    else
        echo "C"
    fi
}

cmd_start() {
    if is_running; then
        ensure_db
        info "already running on ${HOST}:${PORT} (data: ${DIR})"
        return 0
    fi
    if port_in_use; then
        die "port ${PORT} on ${HOST} is in use by another server (not the cluster in ${DIR}); stop it or set TUAN_PG_PORT"
    fi

    # Anything left in DIR is from a cluster that died: it is throwaway, start afresh.
    if [ -e "${DIR}" ]; then
        info "removing stale data directory ${DIR}"
        rm -rf "${DIR}"
    fi
    mkdir -p "${DIR}"
    chmod 700 "${DIR}"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user; install the Debian package 'postgresql' (make system-deps)"
        chown postgres: "${DIR}"
    fi

    local loc
    loc="$(pick_locale)"
    info "initdb ${DIR} (PostgreSQL $("${BIN}/pg_ctl" --version | awk '{print $3}'), locale ${loc})"
    if ! as_pg "${BIN}/initdb" -D "${DIR}" -A trust -U "${DB_USER}" -E UTF8 --locale="${loc}" \
        >"${DIR}.initdb.log" 2>&1; then
        cat "${DIR}.initdb.log" >&2
        rm -f "${DIR}.initdb.log"
        die "initdb failed"
    fi
    rm -f "${DIR}.initdb.log"

    info "starting on ${HOST}:${PORT}"
    if ! as_pg "${BIN}/pg_ctl" -D "${DIR}" \
        -o "-h ${HOST} -p ${PORT} -k ${DIR} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        -l "${DIR}/log" -w -t 60 start >/dev/null; then
        [ -f "${DIR}/log" ] && tail -n 30 "${DIR}/log" >&2
        die "pg_ctl start failed (log: ${DIR}/log)"
    fi
    ensure_db
    info "ready: $(cmd_url)"
}

cmd_stop() {
    if [ -f "${DIR}/PG_VERSION" ]; then
        if is_running; then
            info "stopping the cluster in ${DIR}"
            if ! as_pg "${BIN}/pg_ctl" -D "${DIR}" -m fast -w -t 30 stop >/dev/null 2>&1; then
                info "fast shutdown failed; trying immediate"
                as_pg "${BIN}/pg_ctl" -D "${DIR}" -m immediate -w -t 30 stop >/dev/null 2>&1 \
                    || die "could not stop the cluster in ${DIR}"
            fi
        fi
    fi
    if [ -e "${DIR}" ]; then
        rm -rf "${DIR}"
        info "removed ${DIR}"
    fi
}

cmd_url() {
    echo "postgresql+psycopg://${DB_USER}@${HOST}:${PORT}/${DB_NAME}"
}

usage() {
    echo "usage: $0 start|stop|url|status" >&2
    exit 2
}

[ $# -eq 1 ] || usage
case "$1" in
    start) BIN="$(find_bin)"; cmd_start ;;
    stop) BIN="$(find_bin)"; cmd_stop ;;
    status)
        BIN="$(find_bin)"
        if is_running; then echo "running on ${HOST}:${PORT} (data: ${DIR})"; else echo "not running"; exit 1; fi
        ;;
    url) cmd_url ;;
    *) usage ;;
esac
