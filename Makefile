# Everything a fresh machine needs: `make test` and `make demo` create .venv and install
# the four distributions (editable) with their test dependencies. Offline after install.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-v4
# torch is pinned and installed first so pyserini/transformers never pick another version. On
# these machines PyPI serves 2.13.0 as its CUDA build (~3 GB with the nvidia-* wheels; it runs
# on the CPU; pip's cache makes a reinstall fast). Override with TORCH=... (e.g. a CPU wheel).
TORCH ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test check demo bench jar clean

install: $(STAMP)

$(STAMP): pyproject.toml connectors/lucene/pyproject.toml connectors/opensearch/pyproject.toml training/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install -q --disable-pip-version-check \
		-e ".[encode,test,serve,serve-test,langchain,llama-index,sentence-transformers]" -e connectors/lucene -e "connectors/opensearch[test]" -e training
	touch $(STAMP)

# The whole suite (what CI runs): real OpenSearch nodes, Chromium, crash loops; the 15 slowest
# tests are listed at the end. Every test has a deadline (pyproject.toml, pytest-timeout).
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 tests

# The inner loop, under 3 minutes on 2 cores: everything but the marker groups that start
# OpenSearch JVM nodes, drive a browser or take long (pyproject.toml lists the markers), spread
# over the cores by pytest-xdist (--dist loadfile: a file's tests and its fixtures stay in one
# worker; each worker that needs Lucene starts its own JVM). CHECK_WORKERS=0 runs it serially.
# `make test` stays serial: the OpenSearch tests size their nodes for one at a time.
CHECK_MARKERS := not cluster and not browser and not slow
CHECK_WORKERS ?= auto
check: $(STAMP)
	$(BIN)/python -m pytest -q --durations=10 -n $(CHECK_WORKERS) --dist loadfile -m "$(CHECK_MARKERS)" tests

# Debian's chromium for tests/serve's browser test (Playwright drives it by executable_path;
# `playwright install` is never run). Only when it is missing and apt-get exists.
.PHONY: chromium
test: chromium
chromium:
	@test -x /usr/bin/chromium || ! command -v apt-get >/dev/null || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

demo: $(STAMP)
	bash examples/demo.sh $(BIN)

# The quick ones (a few minutes on 2 cores); the full runs take minutes to hours on a CPU and
# their commands are in benchmarks/RESULTS.md (Seismic needs the lucene `bench` extra).
bench: $(STAMP)
	$(BIN)/python benchmarks/query_encode.py
	$(BIN)/python benchmarks/lucene.py --docs 20000 --queries 200 --skip-jsonvector --skip-seismic

# Rebuild the Lucene connector's helper jar after editing connectors/lucene/java (needs javac;
# the jar is committed, so nobody else needs a JDK, and tests/lucene fails on a stale jar).
jar: $(STAMP)
	PYTHON=$(abspath $(BIN)/python) connectors/lucene/java/build.sh

clean:
	rm -rf $(VENV) demo-out .pytest_cache

# ---- OpenSearch (connectors/opensearch/server): a real node for tests, demo and benchmarks.
# The server jars of both lines (server/lines.tsv: 3.x and 2.19.x) come from Maven Central
# (server/pom.xml), the launcher is compiled against each (needs mvn and javac 17 / 21+).
# Fetched once by install/test; tests/opensearch then starts nodes offline from them.
# build.sh also lays out the plugin nodes (server/plugins: 3.6.0 and 2.19.1 with neural-search,
# ml-commons, k-NN, job-scheduler; about 800 MB into ~/.m2 once, 330 MB under server/jars).
OS_SERVER := connectors/opensearch/server
OS_BUILT := $(OS_SERVER)/jars/.built
.PHONY: opensearch-jars demo-opensearch
install: $(OS_BUILT)
test: $(OS_BUILT)
opensearch-jars: $(OS_BUILT)
$(OS_BUILT): $(OS_SERVER)/pom.xml $(OS_SERVER)/lines.tsv $(OS_SERVER)/build.sh $(OS_SERVER)/find_jdk.sh $(wildcard $(OS_SERVER)/launcher/*.java $(OS_SERVER)/launcher/*/*.java) \
		$(wildcard $(OS_SERVER)/plugins/*)
	bash $(OS_SERVER)/build.sh
	touch $@
demo-opensearch: $(STAMP) $(OS_BUILT)
	bash examples/demo_opensearch.sh $(BIN)
