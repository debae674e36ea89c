# One entry point for people and CI: `make test` builds the venv, fetches the pinned
# Meilisearch binary once (into ~/.cache/whatsapp-explorer), then runs ruff, mypy and pytest.
# `make test-fast` runs the unit tests alone (no Meilisearch, Chromium, nginx or subprocess
# servers): the loop while editing. `make docs` rewrites the generated CLI reference.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test test-fast lint install meilisearch demo bench tools docs screenshots clean

# Two workers, a test file each at a time (--dist loadfile: a file's servers stay on one
# worker): the suite grew past 19 minutes on one worker with messages and labels.
test: lint meilisearch tools
	$(PY) -m pytest -n 2 --dist loadfile

# The tests marked `external` (tests/conftest.py) and `slow` are left out; one worker per
# CPU (pytest-xdist), since the rest are independent and each sets up its own servers.
test-fast: install
	$(PY) -m pytest -q -n auto -m "not external and not slow"

docs: install
	$(PY) -m explorer.dev.cli_reference

lint: install
	$(VENV)/bin/ruff format --check explorer tests benchmarks docs/*.py
	$(VENV)/bin/ruff check explorer tests benchmarks docs/*.py
	$(VENV)/bin/mypy

install: $(VENV)/.installed

# Older versions compiled some modules in place with mypyc: a leftover .so would shadow
# the source it was built from, so it goes before the (plain Python) install.
$(VENV)/.installed: pyproject.toml
	rm -rf explorer/*.so build
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

meilisearch: install
	$(PY) -m explorer.dev.meili_bin

# Meilisearch + a 10,000-chat sandbox + reindex + searches + the web UI, until Ctrl-C.
demo: meilisearch
	$(VENV)/bin/explorer demo $(DEMO_ARGS)

# From Debian when missing: docker-compose validates docker-compose.yml without a Docker
# engine; nginx runs compose's servers (deploy/nginx) in front of a real `explorer serve`;
# chromium drives the agent page and the web UI in the browser tests; node runs the page's
# query rules against the shared tables; prometheus (promtool and the server) unit-tests the
# alert rules in deploy/prometheus and scrapes a real `explorer listen` with them.
TOOLS := docker-compose:docker-compose nginx:nginx chromium:chromium node:nodejs \
    promtool:prometheus
tools:
	@missing=""; for pair in $(TOOLS); do command -v $${pair%%:*} >/dev/null || \
	  [ -x /usr/sbin/$${pair%%:*} ] || missing="$$missing $${pair#*:}"; done; \
	[ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; } || \
	  echo "could not install$$missing: the tests that need them will fail"

# The README's screenshots of the agent page (docs/screenshots/), with fonts for every script.
FONTS := fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji
screenshots: install meilisearch tools
	@dpkg -s $(FONTS) >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(FONTS)) >/dev/null; } || \
	  echo "fonts missing: names in some scripts will show as boxes"
	$(PY) docs/screenshots.py

bench: install meilisearch
	$(PY) benchmarks/crawl.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build explorer/*.so
