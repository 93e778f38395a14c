# Tuan — build, test and demo.
#
#   make demo    migrate a SQLite database in var/, seed demo data, serve on http://127.0.0.1:8000
#   make test    lint + the whole test suite against a throwaway PostgreSQL (scripts/pg.sh)
#
# Works on a fresh Debian 12 machine as root with only python3 and pip: `venv` installs uv,
# `system-deps` installs PostgreSQL from apt. Run `make help` for every target and variable.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV         := .venv
STAMP        := $(VENV)/.synced
HOST         ?= 127.0.0.1
PORT         ?= 8000
SEED         ?= 42
# Whole pytest run; each test also has pytest-timeout's limit from pyproject.toml.
TEST_TIMEOUT ?= 75m
PYTEST_ARGS  ?=
# pytest-xdist processes; each takes whole test files (--dist loadfile) so a module's fixtures
# (its demo database, its PostgreSQL database, its served Tuan) are built once. 0 = no xdist.
TEST_WORKERS ?= auto
BENCH_ARGS   ?=
# Tests need PostgreSQL, Debian's Chromium (Playwright drives it) and a CJK font for screenshots
# and PDFs; WeasyPrint (PDF reports) needs Pango; the demo needs the font and Pango.
SYSTEM_PACKAGES := postgresql chromium fonts-wqy-microhei libpango-1.0-0 libpangoft2-1.0-0
DEMO_PACKAGES   := fonts-wqy-microhei libpango-1.0-0 libpangoft2-1.0-0
LINT_PATHS    = $(wildcard src tests benchmarks migrations)

XDIST_ARGS = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

TUAN_PG_PORT ?= 55432
export TUAN_PG_PORT

# Python keeps compiled bytecode (in the venv and __pycache__/, which git ignores) even where the
# machine says not to (PYTHONDONTWRITEBYTECODE, set on ours): every `tuan` a test or the demo
# starts -- servers, their command processes, CLI calls -- otherwise compiles Tuan and its
# libraries again, ~5 s of CPU each on the 2-core machine.
export PYTHONDONTWRITEBYTECODE :=

.PHONY: help venv assets demo-deps system-deps lint test pytest demo bench bench-analytics clean distclean pg-start pg-stop

help:
	@echo "Targets:"
	@echo "  make demo         migrate var/tuan.db, seed demo data (SEED=$(SEED)), reconcile, serve on $(HOST):$(PORT)"
	@echo "  make test         lint, then pytest against a throwaway PostgreSQL on port $(TUAN_PG_PORT)"
	@echo "  make lint         ruff check + mypy"
	@echo "  make pytest       the tests alone, with the throwaway PostgreSQL (PYTEST_ARGS=...)"
	@echo "  make bench        python -m benchmarks (BENCH_ARGS=...)"
	@echo "  make bench-analytics  10M orders, 50M events (cached in var/bench-analytics/): dashboard, KPIs, funnel, retention vs pandas (BENCH_ARGS=--quick ...)"
	@echo "  make venv         install uv if missing, uv sync --frozen into .venv"
	@echo "  make assets       npm ci the console's front-end assets (assets/package-lock.json)"
	@echo "  make system-deps  apt-get install what the tests need ($(SYSTEM_PACKAGES)), if missing"
	@echo "  make pg-start / pg-stop   the test PostgreSQL by hand (scripts/pg.sh)"
	@echo "  make clean        remove var/, caches, the venv stamp and the test PostgreSQL; distclean: .venv too"
	@echo "Variables: HOST PORT SEED PYTEST_ARGS TEST_WORKERS TEST_TIMEOUT TUAN_PG_PORT; TUAN_TEST_PG_URL set = use that server"

# ---------------------------------------------------------------------------------------------
# Environment

venv: $(STAMP)

# uv is taken from PATH, else from `python3 -m uv`, else installed with pip. pip may print a
# harmless warning about /opt/pypi-more on some machines.
$(STAMP): pyproject.toml uv.lock
	@if command -v uv >/dev/null 2>&1; then \
		uv=uv; \
	elif python3 -m uv --version >/dev/null 2>&1; then \
		uv="python3 -m uv"; \
	else \
		echo "make: installing uv with pip"; \
		command -v python3 >/dev/null 2>&1 || { echo "make: error: python3 is not installed" >&2; exit 1; }; \
		python3 -m pip install --quiet uv \
			|| python3 -m pip install --quiet --break-system-packages uv \
			|| { echo "make: error: could not install uv with pip" >&2; exit 1; }; \
		uv="python3 -m uv"; \
	fi; \
	export UV_PYTHON_DOWNLOADS="$${UV_PYTHON_DOWNLOADS:-never}"; \
	if [ -z "$${SSL_CERT_FILE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then \
		export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt; \
	fi; \
	echo "make: $$uv sync --frozen"; \
	$$uv sync --frozen
	@touch $(STAMP)

system-deps: PACKAGES = $(SYSTEM_PACKAGES)
demo-deps: PACKAGES = $(DEMO_PACKAGES)
system-deps demo-deps:
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
		if [ "$@" = demo-deps ]; then \
			echo "make: not a Debian system: install a CJK font (e.g. WenQuanYi Micro Hei) yourself" >&2; \
			exit 0; \
		fi; \
		if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1; then \
			exit 0; \
		fi; \
		echo "make: error: not a Debian system and no PostgreSQL server found; install PostgreSQL 15 (initdb, pg_ctl) yourself" >&2; \
		exit 1; \
	fi; \
	missing=""; \
	for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" -eq 0 ]; then \
		sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo="sudo -n"; \
	else \
		echo "make: error: missing Debian packages:$$missing; run 'make system-deps' as root or install them" >&2; \
		exit 1; \
	fi; \
	echo "make: installing Debian packages:$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get update -q; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $$missing

assets:
	@scripts/assets.sh

# ---------------------------------------------------------------------------------------------
# Checks

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy

# lint first, then the tests (lint failing stops here: the tests don't run).
test: venv system-deps lint
	@$(MAKE) pytest

# Starts the throwaway PostgreSQL (unless TUAN_TEST_PG_URL is already set: then that server is
# used), runs pytest, always stops the server, and exits with pytest's code (5 = no tests: fails).
pytest: venv system-deps assets
	@if [ -n "$${TUAN_TEST_PG_URL:-}" ]; then \
		echo "make: using TUAN_TEST_PG_URL=$$TUAN_TEST_PG_URL"; \
	else \
		trap 'scripts/pg.sh stop || true' EXIT; \
		trap 'exit 130' INT TERM; \
		scripts/pg.sh start; \
		TUAN_TEST_PG_URL="$$(scripts/pg.sh url)"; \
		export TUAN_TEST_PG_URL; \
	fi; \
	rc=0; \
	$(VENV)/bin/python -m tuan.analytics.funnel_match || rc=$$?; \
	[ $$rc -ne 0 ] || timeout --foreground -k 30s $(TEST_TIMEOUT) $(VENV)/bin/pytest -q $(XDIST_ARGS) $(PYTEST_ARGS) || rc=$$?; \
	case $$rc in \
		0) ;; \
		5) echo "make: error: pytest collected no tests" >&2 ;; \
		124|137) echo "make: error: the test run exceeded TEST_TIMEOUT=$(TEST_TIMEOUT)" >&2 ;; \
		*) echo "make: pytest failed (exit $$rc)" >&2 ;; \
	esac; \
	exit $$rc

pg-start: system-deps
	@scripts/pg.sh start
	@echo "export TUAN_TEST_PG_URL=$$(scripts/pg.sh url)"

pg-stop:
	@scripts/pg.sh stop

# ---------------------------------------------------------------------------------------------
# Running

# The sandbox payment provider calls back to TUAN_PUBLIC_URL: follow HOST/PORT unless it is set.
demo: export TUAN_PUBLIC_URL ?= http://$(HOST):$(PORT)
demo: venv demo-deps assets
	@mkdir -p var
	$(VENV)/bin/tuan db upgrade
	$(VENV)/bin/tuan demo --seed $(SEED)
	$(VENV)/bin/tuan reconcile
	$(VENV)/bin/python -m tuan.analytics.funnel_match
	HOST=$(HOST) PORT=$(PORT) scripts/demo-serve.sh

bench: venv
	$(VENV)/bin/python -m benchmarks $(BENCH_ARGS)

# Not part of `bench`: generating its data takes ~20 min the first time (then cached, 1.6 GB).
bench-analytics: venv
	$(VENV)/bin/python -m benchmarks.analytics $(BENCH_ARGS)

# ---------------------------------------------------------------------------------------------

clean:
	-@scripts/pg.sh stop 2>/dev/null || true
	rm -rf var/ $(STAMP) .pytest_cache .mypy_cache .ruff_cache .hypothesis tests/artifacts
	find . -path ./.venv -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
