# Two commands matter: `make run` and `make test`. Both set up the virtual environment first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck check bench fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/legspasm kb check
	$(BIN)/legspasm serve --dev

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest

# The fuzzers with a random seed: 10,000 inputs per surface (FUZZ_EXAMPLES=N to change), the
# OpenAPI fuzzing 1,000 per operation and mode; outcome counts in fuzz-report.json.
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-10000} LEGSPASM_FUZZ_RANDOM=1 \
	LEGSPASM_FUZZ_REPORT=fuzz-report.json $(BIN)/python -m pytest -q tests/test_fuzz.py
	FUZZ_EXAMPLES=$${OPENAPI_EXAMPLES:-1000} $(BIN)/python -m pytest -q tests/test_service_openapi.py

# evaluate_parity compares the engine with a baseline revision (default: the engine before
# issue 16 compiled it) on 10,000 generated cases: speed ratios and assessments changed.
PARITY_BASELINE ?= 9e940cb

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	cd benchmarks && ../$(BIN)/python evaluate_parity.py --baseline $(PARITY_BASELINE) --instructions 200
	$(BIN)/python benchmarks/fhir_records.py
	$(BIN)/python benchmarks/service_load.py
	cd benchmarks && ../$(BIN)/python service_wrk.py --workers 1,2
	$(BIN)/python benchmarks/audit_journal.py
	$(BIN)/python benchmarks/web_pages.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
