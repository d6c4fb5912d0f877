# The two commands a fresh machine needs:
#   make local   installs everything and runs the local fabric (Ctrl-C stops it)
#   make test    installs everything and runs the whole test suite (what CI runs)
.PHONY: local test lint bootstrap synth bench

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
export CDK_DISABLE_CLI_TELEMETRY=true

bootstrap:
	@scripts/bootstrap.sh

local: bootstrap
	.venv/bin/octopus local up

test: bootstrap
	scripts/test.sh

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy runtime stacks fabric_constructs app.py
	MYPYPATH=client .venv/bin/mypy client/octopus_client

synth: bootstrap
	npx cdk synth --quiet

bench: bootstrap
	for b in bench/*.py; do .venv/bin/python $$b; done
