# The two commands of the README: `make lab` (set up, open JupyterLab) and `make test`
# (set up, run every test). Both are idempotent; a second run only checks.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
LAB_ARGS ?=

.PHONY: lab test setup host prepare clean help notebooks

help:
	@echo "make lab      set everything up and open JupyterLab on 127.0.0.1"
	@echo "make test     set everything up and run unit, integration and notebook tests"
	@echo "make setup    only the host (Docker engine, tools) and the Python environment"
	@echo "make prepare  setup + build the lab images (offline-capable)"
	@echo "make clean    remove leftovers of dead lab sessions (only labkit-labelled things)"
	@echo "make notebooks  re-execute the notebooks so their committed outputs are current"

host:
	@scripts/setup-host.sh

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[lab,test]'
	@touch $@

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
