# Two commands do all set-up on a fresh machine:
#   make reproduce   create .venv if missing, install, run the quick profile (prints elapsed time)
#   make test        same set-up, then the test suite
# Other targets: make lab (JupyterLab on the notebooks), make clean (executed notebooks and
# generated outputs, keeping figures/quick and run records), make clean-runs (run records),
# make distclean (all of that and the virtual environment).
# Variables: PYTHON (interpreter that creates the venv), VENV (its folder), PROFILE, EXTRAS.
# Nothing is registered outside the venv: the notebooks run on the venv's own "python3" kernel.

PYTHON ?= python3
VENV ?= .venv
PROFILE ?= quick
EXTRAS ?= all
PYTEST_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.goals-installed-$(EXTRAS)

.PHONY: setup reproduce test lab clean clean-runs distclean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when pyproject.toml changes (or the stamp is removed).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e ".[$(EXTRAS)]"
	touch $@

setup: $(STAMP)

reproduce: $(STAMP)
	@start=$$(date +%s); \
	TQDM_DISABLE=1 $(BIN)/python -m goals reproduce --profile $(PROFILE); status=$$?; \
	echo "make reproduce: profile $(PROFILE), status $$status, $$(( $$(date +%s) - start )) s" \
	     "on $$(nproc) CPU core(s)"; \
	exit $$status

test: $(STAMP)
	TQDM_DISABLE=1 MPLBACKEND=Agg $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lab: $(STAMP)
	$(BIN)/python -m jupyter lab notebooks

clean:
	rm -rf tables build dist .pytest_cache
	if [ -d runs ]; then find runs -name '*.ipynb' -delete; fi
	if [ -d figures ]; then \
	  find figures -mindepth 1 -maxdepth 1 -type d ! -name quick -exec rm -rf {} +; fi

# Run records can hold hours of GPU time: only this target (and distclean) removes them.
clean-runs:
	rm -rf runs

distclean: clean clean-runs
	rm -rf $(VENV)
