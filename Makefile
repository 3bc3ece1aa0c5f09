# Two commands for a newcomer on a fresh machine:
#   make demo   runs the example service through the whole pipeline on local Docker + local S3
#               (EXAMPLE=churn: the scikit-learn example whose predict returns probabilities;
#                EXAMPLE=node-risk: the Node.js example, accuracy through its HTTP API)
#   make test   runs every test (Python, Groovy) against the real engine, S3 server and Groovy
SHELL := /bin/bash
.PHONY: demo test infra down bench lint docs

infra:
	@tests/infra/up

demo: infra
	@source .infra/env.sh && MLCI_DEMO_EXAMPLE=$(EXAMPLE) examples/demo

test: infra
	@source .infra/env.sh && tests/run

bench: infra
	@source .infra/env.sh && tests/benchmarks/run

lint: infra
	@source .infra/env.sh && ruff check python tests examples

docs: infra
	@source .infra/env.sh && python tests/tools/gen_docs.py

down:
	@tests/infra/down
