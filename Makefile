# Two commands for a fresh machine:
#   make book   set up .venv and build the HTML book from the committed notebook outputs
#   make test   set up .venv and run every test: pytest, the strict book build, the built pages in headless
#               Chromium, and nbval on every notebook, executed once, from the wheel in a fresh venv
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MATHJAX_VERSION := 3.2.2
MATHJAX := .mathjax/.installed-$(MATHJAX_VERSION)
# Python writes the bytecode of what it imports into the venv, so that only the first of the suite's many
# processes (notebook kernels, pytest workers, the grader's children) compiles torch's modules: an environment
# that sets PYTHONDONTWRITEBYTECODE would make every process compile them again (about 4 s of CPU each).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup book test test-package test-notebooks test-book test-browser browser-pages test-colab test-portability test-gpu chromium execute assignments grade student-release determinism bench bench-notebooks clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# constraints.txt pins the CPU build of torch, so no multi-GB CUDA build is pulled in here. --no-compile:
	# Python compiles what it imports on first use, instead of pip compiling every module of torch up front
	# (halves the set-up time)
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt -e ".[book,test,molecules]"
	# azula, the reference implementations of DPS, MMPS, PiGDM and TMPD that tests/test_tweedie.py compares
	# with: without its declared torchvision and gdown (its guided denoisers need neither, and PyPI's
	# torchvision does not import beside the CPU build of torch); einops is the one module it imports
	$(BIN)/python -m pip install --quiet --no-compile --no-deps "azula>=0.11,<0.12" "einops>=0.7"
	touch $(STAMP)

# MathJax 3 from npm, served from the built site so that the book reads offline (_config.yml:
# html_extra_path, mathjax_path): tex-svg.js and the folders it loads its extensions from.
$(MATHJAX):
	rm -rf .mathjax
	npm install --prefix .mathjax/npm --no-save --no-package-lock --no-audit --no-fund mathjax@$(MATHJAX_VERSION)
	mkdir -p .mathjax/site/mathjax
	cd .mathjax/npm/node_modules/mathjax/es5 && cp -R tex-svg.js a11y adaptors input output sre ui ../../../../site/mathjax/
	touch $@

setup: $(STAMP) $(MATHJAX)

# Headless Chromium for test-browser, from Debian's packages: installed when missing and running as root.
chromium:
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
	  || echo "could not install chromium with apt-get: test-browser fails under CI=true, skips otherwise"; fi

book: setup
	$(BIN)/jupyter-book build .
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# tests/, and instructor/tests/ (the grader's and the self-checks' tests, which hold right answers: the students'
# copy leaves them out with the rest of instructor/)
test-package: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 tests/ $(wildcard instructor/tests)

# The quick loop for authors, against the editable install: every notebook under nbval. Two notebooks run
# at once on two cores, one thread each, as when their outputs were stored (make execute). make test runs
# the notebooks once, in test-colab, instead. tools/offline on PYTHONPATH refuses every network
# connection but the loopback, in every kernel.
test-notebooks: setup
	OMP_NUM_THREADS=1 PYTHONPATH=$(CURDIR)/tools/offline $(BIN)/python -m pytest --nbval-lax --nbval-current-env -n 2 --dist loadscope book/ instructor/ --durations=0

test-book: setup
	$(BIN)/jupyter-book build --all --warningiserror --keep-going .

# The built pages in headless Chromium: math rendered from the local MathJax, figures, internal links.
test-browser: test-book chromium
	$(MAKE) --no-print-directory browser-pages

browser-pages:
	$(BIN)/python -m pytest tests_browser/

# The notebooks of make test, executed once: the wheel, installed (not editable) in a fresh venv, runs
# each notebook copied alone into an empty folder (the Colab path); the first cell finds tutorial_pkg and
# installs nothing. Part of the notebooks run under PyTorch's portable CPU kernels (tools/colab_path.py).
test-colab: setup
	$(BIN)/python tools/colab_path.py

# Two phases, so that neither core waits: pytest beside the strict book build (one core) and then the browser test
# (less than one core: Chromium waits on its pages), each job's output printed whole when the job ends
# (--output-sync); then the notebooks, two at a time. make stops after a phase in which a job failed. (The browser
# test beside the notebooks slowed the notebooks by more than its own time.)
test: setup chromium
	@echo "make test: pytest beside the strict book build and the browser test (each one's output when it ends)"
	$(MAKE) --no-print-directory -j2 --output-sync=target test-package test-browser
	@echo "make test: the notebooks from the wheel"
	$(MAKE) --no-print-directory test-colab

# Every notebook under nbval with the native and the portable CPU kernels (ATEN_CPU_CAPABILITY=default),
# with one and with two threads: the checked outputs must not depend on the machine. About four times
# the notebooks' run time, so not part of make test.
test-portability: setup
	$(BIN)/python tools/portability.py

# On a machine with a CUDA GPU: every notebook on the GPU (asserts must hold; outputs are not compared),
# then benchmarks/gpu.sh; writes benchmarks/results/gpu.json and the GPU table of book/costs.md.
test-gpu: setup
	$(BIN)/python tools/gpu_check.py

# Re-execute every notebook in place and store its outputs (for authors, after changing a chapter).
execute: setup
	$(BIN)/python tools/execute_notebooks.py book instructor

# The student notebooks of the assignments, made from the instructor's (instructor/solutions/, the only
# hand-written source), then executed, so that their stored outputs are what a student sees first.
# tests/test_assignments.py fails when a committed student notebook differs from what this makes.
assignments: setup
	$(BIN)/python tools/make_assignments.py
	$(BIN)/python tools/execute_notebooks.py book/assignments

# Grade a folder of submitted assignment notebooks (make grade SUBMISSIONS=folder): hidden tests in the grader's
# process, the answer cells screened and run in a fresh process each; writes FOLDER_gradebook.csv and feedback files
# (tutorial_pkg/grader.py; README, "For instructors").
SUBMISSIONS ?= submissions
grade: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m tutorial_pkg.grader $(SUBMISSIONS)

# The students' copy of the course (make student-release DEST=folder): the committed tree without instructor/,
# checked for solution lines in its assignments (tools/student_release.py; README, "For instructors").
student-release:
	$(BIN)/python tools/student_release.py $(DEST)

# Execute every notebook three times, in memory, and report each NBVAL_CHECK_OUTPUT cell whose output differs
# between runs or from the stored one. About three times the notebooks' run time: not part of `make test`.
determinism: setup
	$(BIN)/python tools/determinism.py book

# What guidance costs (book/costs.md): CPU ratios measured within one run, printed, written to
# benchmarks/results/ and book/_generated/. Threads fixed, as for the notebooks; never a pass/fail test.
BENCH_THREADS ?= 1
bench: $(STAMP)
	OMP_NUM_THREADS=$(BENCH_THREADS) $(BIN)/python benchmarks/run.py --threads $(BENCH_THREADS)

# Each notebook's execution time under test-notebooks' settings, against the budget (minutes).
bench-notebooks: $(STAMP)
	$(BIN)/python benchmarks/notebook_budget.py

clean:
	rm -rf _build
