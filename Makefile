# fleetforge.fleet: the two set-up commands are `make demo` and `make test`.
# Everything below installs what it needs (system packages, venvs, base images) on a fresh
# Debian 12 machine, as root or through sudo.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
VENVS := .venvs
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := .cache/stamps
LAB_HOSTS ?= 3
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help deps venv venvs images lab lab-airgap lab-down demo test test-fast test-vm lint unit \
	sanity molecule build clean-lab clean

help:
	@echo "make demo       bring up a $(LAB_HOSTS)-host lab and run playbooks/site.yml against it"
	@echo "make test       the whole test suite (lint, unit, sanity on every core, molecule)"
	@echo "make test-fast  lint and unit tests on ansible-core 2.19, no containers"
	@echo "make lab | lab-airgap | lab-down   manage the local lab fleet"

$(STAMP):
	@mkdir -p $(STAMP)

# System packages the lab needs (podman with runc, debootstrap, ssh client).
deps: | $(STAMP)
	@$(SUDO) $(PYTHON) tools/fleetlab.py doctor --install

# The controller venv: ansible-core 2.19, molecule, linters, test tools (pinned).
venv: $(STAMP)/venv
$(STAMP)/venv: tests/requirements/dev.txt | $(STAMP)
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r tests/requirements/dev.txt
	@touch $@

# The collection must sit under ansible_collections/fleetforge/fleet for ansible to find it.
.build/collections/ansible_collections/fleetforge/fleet:
	@mkdir -p $(@D)
	@ln -sfn $(CURDIR) $@

images: deps
	@$(SUDO) $(PYTHON) tools/fleetlab.py images

lab: deps venv images .build/collections/ansible_collections/fleetforge/fleet
	@if [ -f .lab/lab/state.json ]; then echo "lab already up (make lab-down to remove)"; \
	else $(SUDO) $(PYTHON) tools/fleetlab.py up --hosts $(LAB_HOSTS); fi

lab-airgap: deps venv images .build/collections/ansible_collections/fleetforge/fleet
	@$(SUDO) $(PYTHON) tools/fleetlab.py up --name airgap --hosts $(LAB_HOSTS) --airgap

lab-down:
	@$(SUDO) $(PYTHON) tools/fleetlab.py down

demo: lab
	$(BIN)/ansible-playbook -i inventories/lab/hosts.yml playbooks/site.yml | tee .cache/demo.log
	@$(BIN)/python tools/summary.py .cache/demo.log

# The whole suite: stages and their timings are printed at the end.
test: deps venv images .build/collections/ansible_collections/fleetforge/fleet
	@$(BIN)/python tools/fleettest.py --all

test-fast: venv .build/collections/ansible_collections/fleetforge/fleet
	@$(BIN)/python tools/fleettest.py --fast --serial

build: venv
	@$(BIN)/python tools/fleettest.py --stage build

clean-lab:
	@$(SUDO) $(PYTHON) tools/fleetlab.py clean

clean: clean-lab
	rm -rf .build .cache tests/output

# The real-kernel tier (qemu, software emulation): kernel-level hardening controls that a
# container cannot prove. About 25 minutes on this machine, so it is not part of `make test`.
test-vm: deps venv .build/collections/ansible_collections/fleetforge/fleet
	PATH=$(CURDIR)/$(BIN):$$PATH MOLECULE_GLOB='tests/vm/*/molecule.yml' $(BIN)/molecule test -s hardening_vm
