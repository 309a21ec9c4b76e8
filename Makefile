# Two commands do all the set-up on a fresh machine: `make demo` and `make test`; `make docs` builds the site.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch is installed first so that resolving the package never pulls a CUDA build.
TORCH_SPEC ?= torch==2.13.0
# Datasets: $(ICML17_DATA) if set, else ../shared/data when it exists beside the checkout, else the default folder.
DATA_DIR ?= $(or $(ICML17_DATA),$(wildcard ../shared/data))
DEMO_FLAGS ?= $(if $(DATA_DIR),--data-dir $(DATA_DIR),)

.PHONY: demo test install bench docs clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test,bench,rl,docs]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/icml17 demo $(DEMO_FLAGS)

# lint first (rules in pyproject.toml); tests/test_docs.py builds the site with --strict inside the suite
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

# the results pages are rewritten from results/**/*.json first; cli.md and api/*.md are generated during the build
docs: install
	$(VENV)/bin/icml17 results
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

bench: install
	$(PY) benchmarks/maml.py --quick
	$(PY) benchmarks/pixelcnn-sampling.py --quick
	$(PY) benchmarks/sharpness.py --quick

clean:
	rm -rf $(VENV) runs site
