# certctl task runner. `make run` and `make test` work on a machine with only Python 3.11+:
# they install uv with pip when it is missing and sync the whole workspace first.
PYTHON ?= python3
UV ?= $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
SYNC_STAMP := .venv/.certctl-synced

.PHONY: sync run test lint typecheck fix bench

$(SYNC_STAMP): pyproject.toml uv.lock core/pyproject.toml sdk/pyproject.toml $(wildcard plugins/*/*/pyproject.toml)
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --all-packages --python $(PYTHON)
	@touch $(SYNC_STAMP)

sync: $(SYNC_STAMP)

run: sync
	$(UV) run certctl serve --demo

# One pytest worker per core; PYTEST_ARGS="-n 0" runs in one process (e.g. for pdb).
PYTEST_ARGS ?= -n auto --durations=25
test: sync
	$(UV) run pytest $(PYTEST_ARGS)

lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy sdk/src core/src plugins/issuers/local/src plugins/targets/nginx/src plugins/notifiers/webhook/src plugins/notifiers/email/src plugins/notifiers/slack/src plugins/notifiers/pagerduty/src plugins/notifiers/teams/src plugins/notifiers/opsgenie/src plugins/auth/oidc/src plugins/auth/keycloak/src
	$(UV) run lint-imports

typecheck: sync
	$(UV) run mypy sdk/src core/src plugins/issuers/local/src plugins/targets/nginx/src plugins/notifiers/webhook/src plugins/notifiers/email/src plugins/notifiers/slack/src plugins/notifiers/pagerduty/src plugins/notifiers/teams/src plugins/notifiers/opsgenie/src plugins/auth/oidc/src plugins/auth/keycloak/src

fix: sync
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

bench: sync
	$(UV) run python benchmarks/run.py $(BENCH_ARGS)
