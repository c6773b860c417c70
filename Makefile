PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: demo test bench clean gnuastro

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_RUN): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): $(STAMP_RUN)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(STAMP_RUN)
	$(PY) -m starpix.demo --outdir demo-output

# Gnuastro (a peer tool, for tests of agreement only): installed with apt-get where
# this machine allows it; without it those tests are skipped with a reason.
gnuastro:
	@command -v astscript-psf-stamp >/dev/null 2>&1 \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	       && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuastro >/dev/null 2>&1 \
	            || { apt-get update -qq >/dev/null 2>&1 \
	                 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuastro >/dev/null 2>&1; }; }; } \
	  || echo "Gnuastro could not be installed: its agreement tests will be skipped"

test: $(STAMP_TEST) gnuastro
	$(PY) -m pytest -q --durations=15

bench: $(STAMP_TEST) gnuastro
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/cutout.py
	$(PY) bench/psf_models.py
	$(PY) bench/photometry.py
	$(PY) bench/stamps.py
	$(PY) bench/preprocess.py
	$(PY) bench/drizzle.py
	$(PY) bench/scale.py

clean:
	rm -rf $(VENV) demo-output build src/*.egg-info
