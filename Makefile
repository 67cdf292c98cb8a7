# The two commands of the README: `make run` and `make test`. Everything else supports them.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test lint format venv bench clean

# Recreate the environment only when pyproject.toml changed since the last install.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

run: venv
	@mkdir -p var
	@if [ -z "$$REDIS_URL" ]; then echo "make run: no REDIS_URL, Celery uses the filesystem broker under var/celery-queue"; fi
	$(PY) -m panel.devdb run -- sh -c '$(PY) manage.py migrate --noinput \
		&& $(PY) manage.py seed_demo && exec $(VENV)/bin/honcho start -f Procfile'

test: venv
	$(PY) -m panel.devdb test -- $(VENV)/bin/pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff check --fix .

bench: venv
	$(PY) -m panel.devdb test -- $(PY) -m bench.run_all

clean:
	rm -rf var/pgtest-* var/celery-queue var/staticfiles
