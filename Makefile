# `make run`: the broker on localhost:9092 with config/server.properties.
# `make test`: every test suite. Both set up .venv themselves; pip runs again only when
# pyproject.toml changes (stamp files in .venv). Pass pytest flags with PYTEST_ARGS="-k roundtrip".

VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: docs run test venv clean bench soak

venv: $(VENV_PYTHON)

$(VENV_PYTHON):
	scripts/make-venv.sh $(VENV)

$(VENV)/.installed: pyproject.toml | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV_PYTHON)
	$(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	exec $(VENV)/bin/odradek server config/server.properties

test: $(VENV)/.installed-test
	scripts/ensure-system-packages.sh
	$(VENV_PYTHON) -m pytest tests -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache

# `make bench`: odradek against Apache Kafka (fetched from Maven Central into .cache/bench) on this
# machine; writes bench/results/<date>-<commit>.md. Never part of `make test`. About 40 min; BENCH_ARGS=--quick for ~8 min.
BENCH_ARGS ?=
bench: $(VENV)/.installed-test
	$(VENV_PYTHON) bench/run.py $(BENCH_ARGS)

# `make soak`: the mixed workload of tests/soak/workload.py against one broker for SOAK_SECONDS
# (default 3 h), then its checks; writes report.md, soak.png and broker.log to
# bench/results/soak-<date>-<time>/ and fails on a lost record or a leak. `make test` runs a 90 s slice.
SOAK_SECONDS ?= 10800
soak: $(VENV)/.installed-test
	$(VENV_PYTHON) tests/soak/workload.py --seconds $(SOAK_SECONDS) --report-dir bench/results/soak-$$(date +%Y-%m-%d-%H%M)

# docs/configuration.md is generated from odradek/config.py (a unit test checks it is current).
docs: $(VENV)/.installed
	$(VENV_PYTHON) -c "from odradek.config import describe_doc_markdown; open('docs/configuration.md', 'w').write(describe_doc_markdown())"
