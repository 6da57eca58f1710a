# Two commands for a fresh machine:
#   make book   set up .venv and build the HTML book from the committed notebook outputs
#   make test   set up .venv and run every test: pytest, nbval on every notebook, the strict book build
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup book test test-package test-notebooks test-book execute clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# constraints.txt pins the CPU build of torch, so no multi-GB CUDA build is pulled in here
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[book,test]"
	touch $(STAMP)

setup: $(STAMP)

book: setup
	$(BIN)/jupyter-book build .
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test-package: setup
	$(BIN)/python -m pytest tests/

# Two notebooks run at once on two cores: one thread each, as when their outputs were stored
# (make execute), so that thread scheduling neither slows them down nor changes their numbers.
test-notebooks: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest --nbval-lax --nbval-current-env -n 2 --dist loadscope book/ --durations=0

test-book: setup
	$(BIN)/jupyter-book build --warningiserror --keep-going .

test: test-package test-notebooks test-book

# Re-execute every notebook in place and store its outputs (for authors, after changing a chapter).
execute: setup
	$(BIN)/python tools/execute_notebooks.py book

clean:
	rm -rf _build
