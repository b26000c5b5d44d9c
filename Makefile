# Developer entry points of django-tenancy. Everything runs in ./.venv, which
# is created on first use; `pip install -e` is re-run whenever pyproject.toml
# is newer than the stamp file of that install.
#
#   make demo   run the example project (SQLite, in-process worker on the memory broker; no services);
#               installs the package alone (no driver, no test tools)
#   make test   run the suite on PostgreSQL (psycopg2), then on SQLite; fails if either leg fails
#   make lint   ruff check, ruff format --check and mypy (the pinned .[lint] extra)
#   make test-psycopg3  the PostgreSQL leg on psycopg 3 in ./.venv-psycopg3, where psycopg2
#                       is not installed (the target fails if it is importable there)
#   make test-citus     the PostgreSQL leg against the Citus coordinator TENANCY_TEST_CITUS=host:port
#                       (databases prepared there and on its workers first); skipped with a message
#                       when TENANCY_TEST_CITUS is not set
#   make test-django6   the same two legs on Django 6.x in ./.venv-django6 (Python >= 3.12,
#                       found through pyenv or the PATH; skipped with a message if there is none)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
LINT_STAMP := $(VENV)/.installed-lint

# Subprocesses the tests start (celery, django-admin) resolve to the venv.
RUN := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)"

.PHONY: install demo test test-citus test-django6 test-psycopg3 install-psycopg3 lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# The demo needs the package and its two dependencies (Django, Celery) only: SQLite,
# the in-memory broker, no driver. A later `make test` adds the test tools.
$(DEMO_STAMP): pyproject.toml | $(PY)
	$(PIP) install -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(PY)
	$(PIP) install -e '.[test,benchmarks]'
	touch $@

$(LINT_STAMP): pyproject.toml | $(PY)
	$(PIP) install -e '.[lint]'
	touch $@

install: $(TEST_STAMP)

demo: $(DEMO_STAMP)
	$(RUN) $(PY) -m worker demo

# Both legs always run; the target fails if either did. pytest exits 5 when
# it collected no tests, and that counts as a failure like any non-zero code.
test: $(TEST_STAMP)
	@pg=0; sqlite=0; \
	echo '==> PostgreSQL leg: python -m pytest'; \
	$(RUN) $(PY) -m pytest || pg=$$?; \
	echo '==> SQLite leg: TENANCY_TEST_DATABASE=sqlite python -m pytest -m "not postgresql"'; \
	$(RUN) TENANCY_TEST_DATABASE=sqlite $(PY) -m pytest -m "not postgresql" || sqlite=$$?; \
	echo "==> pytest exit codes: PostgreSQL leg $$pg, SQLite leg $$sqlite (5 = no tests collected)"; \
	if [ $$pg -ne 0 ] || [ $$sqlite -ne 0 ]; then echo '==> FAILED' >&2; exit 1; fi; \
	echo '==> both legs passed'

# The Django 6.x leg: Django 6 needs Python >= 3.12, so it runs in its own venv
# built from the first such interpreter found: $(PYTHON_DJANGO6) if set, then
# pyenv's 3.12 (or 3.13), then python3.12/python3.13 on the PATH, then
# $(PYENV_ROOT)/versions/3.1x. Without one, the leg is skipped with a message and
# the target succeeds. The suite's database names come from the environment
# (TENANCY_PG_TEST_NAME, TENANCY_PG_OTHER_TEST_NAME, TENANCY_SQLITE_TEST_PATH),
# as in `make test`, and default to the usual ones.
DJANGO6_VENV := .venv-django6
DJANGO6_PY   := $(DJANGO6_VENV)/bin/python
DJANGO6_PIP  := $(DJANGO6_PY) -m pip --disable-pip-version-check
DJANGO6_SPEC := Django>=6,<7
# Extra pytest arguments for both Django 6 legs, e.g. DJANGO6_PYTEST_ARGS='-x --durations=20'.
DJANGO6_PYTEST_ARGS ?=
DJANGO6_STAMP := $(DJANGO6_VENV)/.installed-test
DJANGO6_RUN  := PATH="$(CURDIR)/$(DJANGO6_VENV)/bin:$$PATH" VIRTUAL_ENV="$(CURDIR)/$(DJANGO6_VENV)"
PYENV_ROOT   ?= $(HOME)/.pyenv

test-django6:
	@ok() { [ -n "$$1" ] && [ -x "$$1" ] && "$$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }; \
	py=''; \
	for c in "$(PYTHON_DJANGO6)" \
	         "$$(pyenv prefix 3.12 2>/dev/null | head -n 1)/bin/python3.12" \
	         "$$(pyenv prefix 3.13 2>/dev/null | head -n 1)/bin/python3.13" \
	         "$$(command -v python3.12 2>/dev/null)" "$$(command -v python3.13 2>/dev/null)" \
	         $$(ls -d $(PYENV_ROOT)/versions/3.12*/bin/python3.12 $(PYENV_ROOT)/versions/3.13*/bin/python3.13 2>/dev/null | sort -V); do \
	    if ok "$$c"; then py="$$c"; break; fi; \
	done; \
	if [ -z "$$py" ]; then \
	    echo '==> Django 6 leg SKIPPED: Django 6 needs Python >= 3.12 and none was found'; \
	    echo '    (looked at $$PYTHON_DJANGO6, `pyenv prefix 3.12`/`3.13`, python3.12/python3.13 on the PATH,'; \
	    echo '    $(PYENV_ROOT)/versions/3.12*, 3.13*); set PYTHON_DJANGO6=/path/to/python3.12 to run it'; \
	    exit 0; \
	fi; \
	if [ -x $(DJANGO6_PY) ] && ! ok $(DJANGO6_PY); then rm -rf $(DJANGO6_VENV); fi; \
	if [ ! -x $(DJANGO6_PY) ]; then \
	    echo "==> creating $(DJANGO6_VENV) with $$py ($$("$$py" --version 2>&1))"; \
	    "$$py" -m venv $(DJANGO6_VENV) || exit 1; \
	fi; \
	if [ ! -f $(DJANGO6_STAMP) ] || [ pyproject.toml -nt $(DJANGO6_STAMP) ]; then \
	    $(DJANGO6_PIP) install -q -e '.[test]' '$(DJANGO6_SPEC)' || exit 1; \
	    touch $(DJANGO6_STAMP); \
	fi; \
	versions="$$($(DJANGO6_PY) -c 'import django, sys; print(f"Django {django.get_version()}, Python {sys.version.split()[0]}")')"; \
	pg=0; sqlite=0; \
	echo "==> Django 6 PostgreSQL leg ($$versions): python -m pytest"; \
	$(DJANGO6_RUN) $(DJANGO6_PY) -m pytest $(DJANGO6_PYTEST_ARGS) || pg=$$?; \
	echo "==> Django 6 SQLite leg ($$versions): TENANCY_TEST_DATABASE=sqlite python -m pytest -m \"not postgresql\""; \
	$(DJANGO6_RUN) TENANCY_TEST_DATABASE=sqlite $(DJANGO6_PY) -m pytest -m "not postgresql" $(DJANGO6_PYTEST_ARGS) || sqlite=$$?; \
	echo "==> Django 6 pytest exit codes: PostgreSQL leg $$pg, SQLite leg $$sqlite (5 = no tests collected)"; \
	if [ $$pg -ne 0 ] || [ $$sqlite -ne 0 ]; then echo '==> Django 6 leg FAILED' >&2; exit 1; fi; \
	echo "==> Django 6 legs passed ($$versions)"

# The psycopg 3 leg: the PostgreSQL leg of `make test` in .venv-psycopg3, built with
# the suite's tools and psycopg 3 (`.[test-tools,postgres]`), never psycopg2. The
# target checks that psycopg2 cannot be imported there, and the suite checks that
# Django's connections run on psycopg 3 (TENANCY_TEST_DRIVER, tests/test_packaging.py).
# Database names come from the environment as in `make test`.
PSYCOPG3_VENV  := .venv-psycopg3
PSYCOPG3_PY    := $(PSYCOPG3_VENV)/bin/python
PSYCOPG3_PIP   := $(PSYCOPG3_PY) -m pip --disable-pip-version-check
PSYCOPG3_STAMP := $(PSYCOPG3_VENV)/.installed-test
PSYCOPG3_RUN   := PATH="$(CURDIR)/$(PSYCOPG3_VENV)/bin:$$PATH" VIRTUAL_ENV="$(CURDIR)/$(PSYCOPG3_VENV)"
# Extra pytest arguments of the psycopg 3 leg, e.g. PSYCOPG3_PYTEST_ARGS='-x tests/test_worker.py'.
PSYCOPG3_PYTEST_ARGS ?=

$(PSYCOPG3_PY):
	$(PYTHON) -m venv $(PSYCOPG3_VENV)

$(PSYCOPG3_STAMP): pyproject.toml | $(PSYCOPG3_PY)
	$(PSYCOPG3_PIP) install -q -e '.[test-tools,postgres]'
	touch $@

install-psycopg3: $(PSYCOPG3_STAMP)

test-psycopg3: $(PSYCOPG3_STAMP)
	@if $(PSYCOPG3_PY) -c 'import psycopg2' >/dev/null 2>&1; then \
	    echo '==> psycopg 3 leg FAILED: psycopg2 is importable in $(PSYCOPG3_VENV)' >&2; exit 1; \
	fi; \
	versions="$$($(PSYCOPG3_PY) -c 'import django, psycopg; print(f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), Django {django.get_version()}")')" || exit 1; \
	echo "==> psycopg 3 PostgreSQL leg ($$versions): python -m pytest"; \
	$(PSYCOPG3_RUN) TENANCY_TEST_DRIVER=psycopg $(PSYCOPG3_PY) -m pytest $(PSYCOPG3_PYTEST_ARGS) \
	    || { echo "==> psycopg 3 leg FAILED (pytest exit code $$?; 5 = no tests collected)" >&2; exit 1; }; \
	echo "==> psycopg 3 leg passed ($$versions)"

# The Citus leg: the PostgreSQL leg of `make test` against an existing Citus cluster
# (coordinator plus workers, schema-based sharding) whose coordinator is
# TENANCY_TEST_CITUS=host:port. tests/citus_cluster.py first (re)creates the test
# databases on the coordinator and on every worker it reports, with the extension,
# the nodes registered, the shared tables migrated and made reference tables; the
# suite then reuses them (--reuse-db). Tested with Citus 13.2.2 on PostgreSQL 15.20.
CITUS_TEST_NAME  ?= test_tenancy_citus
CITUS_OTHER_NAME ?= test_tenancy_citus_other
# Extra pytest arguments of the Citus leg, e.g. CITUS_PYTEST_ARGS='-x tests/test_citus.py'.
CITUS_PYTEST_ARGS ?=

test-citus: $(TEST_STAMP)
	@if [ -z "$$TENANCY_TEST_CITUS" ]; then \
	    echo '==> Citus leg SKIPPED: TENANCY_TEST_CITUS is not set; set it to host:port of a Citus'; \
	    echo '    coordinator (schema-based sharding, workers registered in its postgres database),'; \
	    echo '    e.g. docker compose -f docker-compose.citus.yml up -d, then TENANCY_TEST_CITUS=127.0.0.1:5500'; \
	    exit 0; \
	fi; \
	host="$${TENANCY_TEST_CITUS%:*}"; port="$${TENANCY_TEST_CITUS##*:}"; \
	export PGHOST="$$host" PGPORT="$$port" TENANCY_PG_TEST_NAME="$(CITUS_TEST_NAME)" \
	    TENANCY_PG_OTHER_TEST_NAME="$(CITUS_OTHER_NAME)"; \
	$(RUN) $(PY) -m tests.citus_cluster || { echo '==> Citus leg FAILED: could not prepare the cluster' >&2; exit 1; }; \
	echo "==> Citus leg ($$TENANCY_TEST_CITUS): python -m pytest --reuse-db"; \
	$(RUN) $(PY) -m pytest --reuse-db $(CITUS_PYTEST_ARGS) \
	    || { echo "==> Citus leg FAILED (pytest exit code $$?; 5 = no tests collected)" >&2; exit 1; }; \
	echo "==> Citus leg passed ($$TENANCY_TEST_CITUS)"

lint: $(LINT_STAMP)
	$(RUN) $(PY) -m ruff check tenancy tests worker
	$(RUN) $(PY) -m ruff format --check tenancy tests worker
	$(RUN) $(PY) -m mypy

clean:
	rm -rf $(VENV) $(DJANGO6_VENV) $(PSYCOPG3_VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
