# The two commands of the README: `make lab` (set up, open JupyterLab) and `make test`
# (set up, run every test). Both are idempotent; a second run only checks.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
LAB_ARGS ?=
# The Python environment is installed from requirements.lock (every package pinned, with hashes).
# PYTHON: the interpreter the venv is made from (remove .venv to switch an existing one).
# INSTALLER=uv (default: fast) or INSTALLER=pip (plain pip, the same lock).
# UV: the uv binary; by default a pinned uv bootstrapped with the venv's pip into $(VENV)/uv-VERSION
# (outside site-packages: `uv pip sync` removes what the lock does not list), so every machine
# installs with the same uv. `make setup UV=uv` uses the one on your PATH instead.
PYTHON ?= python3
INSTALLER ?= uv
UV_VERSION ?= 0.13.9
UV_HOME := $(VENV)/uv-$(UV_VERSION)
UV ?= $(UV_HOME)/bin/uv
LOCK_ARGS ?=
# uv trusts the machine's certificate store, as pip does through its configuration (uv's own default is
# a built-in list, which fails behind a proxy with its own certificate authority).
export UV_SYSTEM_CERTS ?= 1

.PHONY: lab test setup host prepare clean help notebooks lock

help:
	@echo "make lab      set everything up and open JupyterLab on 127.0.0.1"
	@echo "make test     set everything up and run unit, integration and notebook tests"
	@echo "make setup    only the host (Docker engine, tools) and the Python environment"
	@echo "make prepare  setup + build the lab images (offline-capable)"
	@echo "make clean    remove leftovers of dead lab sessions (only labkit-labelled things)"
	@echo "make notebooks  re-execute the notebooks so their committed outputs are current"
	@echo "make lock     re-resolve requirements.lock from pyproject.toml (network; LOCK_ARGS=--upgrade for newest)"

host:
	@scripts/setup-host.sh

$(PY):
	$(PYTHON) -m venv $(VENV)

# uv pinned, installed with the venv's pip (a venv made by `uv venv` has none: ensurepip first).
$(UV_HOME)/bin/uv: | $(PY)
	@$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip >/dev/null
	$(PY) -m pip install -q --target $(UV_HOME) uv==$(UV_VERSION)

# Exactly the lock (sync also removes what the lock does not list), then labkit itself, editable.
ifeq ($(INSTALLER),pip)
$(VENV)/.installed: requirements.lock pyproject.toml | $(PY)
	@$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip >/dev/null
	$(PY) -m pip install -q --require-hashes -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	@touch $@
else
$(VENV)/.installed: requirements.lock pyproject.toml | $(PY) $(filter $(UV_HOME)/bin/uv,$(UV))
	$(UV) pip sync --python $(PY) --require-hashes requirements.lock
	$(UV) pip install --python $(PY) --no-deps -e .
	@touch $@
endif

setup: host $(VENV)/.installed

prepare: setup
	@$(VENV)/bin/labkit prepare

lab: prepare
	$(VENV)/bin/labkit lab $(LAB_ARGS)

test: prepare
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: treating as a failure" >&2; exit 1; fi; exit $$rc

clean:
	@$(VENV)/bin/labkit clean

# Re-execute the notebooks in place (stable-output mode) so their committed outputs are current.
notebooks: prepare
	@for nb in notebooks/$(or $(NB),[0-9][0-9]-*).ipynb; do \
	  echo "executing $$nb"; \
	  (cd notebooks && LABKIT_STABLE=1 XDG_STATE_HOME=$$(mktemp -d) ../$(PY) -m papermill --no-progress-bar -k python3 $$(basename $$nb) $$(basename $$nb)) \
	    || { grep -q '"ename": "LabSkipped"' $$nb || exit 1; echo "  (stopped at its skip banner: committed as skipped)"; }; \
	done
	$(PY) -m labkit.cheatsheet

# Re-resolve requirements.lock for every Python the project supports (requires-python >= 3.10),
# with hashes. Needs the package index. Keeps existing pins unless LOCK_ARGS=--upgrade.
lock: | $(filter $(UV_HOME)/bin/uv,$(UV))
	$(UV) pip compile pyproject.toml --extra lab --extra classroom --extra test --universal --python-version 3.10 \
	  --generate-hashes --custom-compile-command 'make lock' $(LOCK_ARGS) -o requirements.lock
