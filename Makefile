# fast_ast: `make train` and `make test` build .venv on first use (pinned by constraints.txt).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train test bench venv clean-venv slurm-up slurm-down

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

train: $(STAMP)
	$(PY) -m fast_ast.train $(ARGS)

test: $(STAMP)
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m fast_ast.bench $(ARGS)

# A SLURM cluster of NODES compute nodes (network + UTS namespaces) on this machine; root; installs
# Debian's slurm and munge when missing. Idempotent; `make slurm-down` removes it (README: SLURM).
NODES ?= 2
slurm-up:
	bash fast_ast/cluster/local_slurm.sh up $(NODES)

slurm-down:
	bash fast_ast/cluster/local_slurm.sh down

clean-venv:
	rm -rf $(VENV)
