# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
REPLICAS ?= 2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench browser haproxy redis class clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamp files re-run pip only when a requirements file changes.
.stamp-runtime: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

.stamp-test: requirements.txt requirements-test.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

# The browser tests drive Debian's Chromium; playwright cannot download a browser here.
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

# `make class` (and its test) put replicas behind Debian's HAProxy (2.6 on bookworm).
haproxy:
	@command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q haproxy; }

# A live class on several replicas shares its state through Debian's redis-server (deploy/class.sh
# starts its own on REDIS_PORT; tests/test_class_store.py on free ports). The package's install may start
# a system redis on 6379: in a container without systemd (no service manager, where a test run or CI
# happens) that one is stopped again, so nothing is left listening there.
redis:
	@command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || { \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q redis-server && \
		{ [ -d /run/systemd/system ] || $(SUDO) /etc/init.d/redis-server stop >/dev/null 2>&1 || true; }; }

# MALLOC_ARENA_MAX: at most 2 malloc arenas for the server's many threads (gpt2viz/cli.py, MALLOC_ARENAS)
run: .stamp-runtime
	MALLOC_ARENA_MAX=$${MALLOC_ARENA_MAX:-2} $(PY) -m streamlit run streamlit_app.py --server.port $(PORT) \
		--server.headless true

# REPLICAS app processes on free local ports behind HAProxy on PORT, each browser pinned to one
# (deploy/haproxy.cfg, README "Serving a class"); Ctrl-C stops them all.
class: .stamp-runtime haproxy redis
	REPLICAS=$(REPLICAS) PORT=$(PORT) PYTHON=$(PY) bash deploy/class.sh

test: .stamp-test browser haproxy redis
	$(PY) -m ruff check .
	$(PY) -m pytest

bench: .stamp-test browser redis
	$(PY) bench/bench_model.py
	$(PY) bench/bench_batch.py
	$(PY) bench/bench_app.py
	$(PY) bench/bench_bundled.py
	$(PY) bench/bench_step.py
	$(PY) bench/bench_why.py
	$(PY) bench/bench_first_screen.py
	$(PY) bench/bench_long_context.py
	$(PY) bench/bench_pages.py
	$(PY) bench/class_load.py
	$(PY) bench/class_follow.py

clean:
	rm -rf $(VENV) .stamp-runtime .stamp-test .pytest_cache .ruff_cache
