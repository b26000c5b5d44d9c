# Developer entry points of django-tenancy. Everything runs in ./.venv, which
# is created on first use; `pip install -e` is re-run whenever pyproject.toml
# is newer than the stamp file of that install.
#
#   make demo   run the example project (SQLite, in-process worker on the memory broker; no services)
#   make test   run the suite on PostgreSQL, then on SQLite; fails if either leg fails
#   make lint   ruff + mypy

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

TEST_STAMP := $(VENV)/.installed-test
LINT_STAMP := $(VENV)/.installed-lint

# Subprocesses the tests start (celery, django-admin) resolve to the venv.
RUN := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)"

.PHONY: install demo test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(TEST_STAMP): pyproject.toml | $(PY)
	$(PIP) install -e '.[test]'
	touch $@

$(LINT_STAMP): pyproject.toml | $(PY)
	$(PIP) install -e '.[lint]'
	touch $@

install: $(TEST_STAMP)

demo: $(TEST_STAMP)
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

lint: $(LINT_STAMP)
	$(RUN) $(PY) -m ruff check tenancy tests worker
	$(RUN) $(PY) -m mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
