# The two commands a new machine needs: `make serve` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
BUNDLE ?= build/minilm
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=
URL      ?= http://127.0.0.1:8000
USERS    ?= 16
DURATION ?= 30s
RESULTS  ?= results

.PHONY: install system-deps k8s-tools test test-fast lint export export-tiny serve loadtest bench clean

install: $(STAMP)

# torch==2.13.0 goes first: anything that lets pip choose torch itself pulls GBs of CUDA wheels.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[export,loadtest,dev,openvino]"
	touch $(STAMP)

# Debian packages the tests use for real: nginx (load balancing), docker-compose (validates the compose file),
# chromium and its driver (the attention explorer's browser test), kubectl (renders the kustomize overlays).
system-deps:
	@missing=""; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v kubectl >/dev/null || missing="$$missing kubernetes-client"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "make test needs these Debian packages:$$missing (apt-get install them as root)" >&2; exit 1; fi; \
	fi

# the full run: every tier (a plain `pytest`, or `make test-fast`, is the fast tier)
# offline Kubernetes validators, in their own venv (checkov pins packages the project's venv also uses)
K8S_VENV := .venv-k8s
$(K8S_VENV)/.installed:
	$(PYTHON) -m venv $(K8S_VENV)
	$(K8S_VENV)/bin/pip install -q --upgrade pip
	$(K8S_VENV)/bin/pip install -q "checkov>=3.2" "kubernetes-validate>=1.33"
	touch $@

k8s-tools: $(K8S_VENV)/.installed

test: install system-deps k8s-tools
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "slow or not slow" $(PYTEST_ARGS)

test-fast: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

$(BUNDLE)/config.json: | $(STAMP)
	$(VENV)/bin/attnserve export minilm --output $(BUNDLE)

export: $(BUNDLE)/config.json

export-tiny: install
	$(VENV)/bin/attnserve export tiny --output build/tiny

serve: install export
	$(VENV)/bin/attnserve serve --model $(BUNDLE) --host $(HOST) --port $(PORT)

# Headless locust for a bounded time against URL; CSV and HTML report under $(RESULTS)/loadtest/.
loadtest: install
	mkdir -p $(RESULTS)/loadtest
	$(VENV)/bin/locust -f loadtest/locustfile.py --headless --host $(URL) -u $(USERS) -r $(USERS) \
		-t $(DURATION) --stop-timeout 10 --csv $(RESULTS)/loadtest/locust --html $(RESULTS)/loadtest/report.html \
		--only-summary

# Batched vs unbatched vs the in-process ONNX Runtime ceiling; table, JSON and plot under $(RESULTS)/bench/.
bench: install export
	$(PY) -m loadtest.bench --model $(BUNDLE) --output $(RESULTS)/bench $(BENCH_ARGS)

clean:
	rm -rf build results .pytest_cache
