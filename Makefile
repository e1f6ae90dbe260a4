# The two commands of the README:
#   make serve   install what is needed and start the gateway on its embedded default
#   make test    install everything and run the whole test suite
# Extra arguments for `portico serve`: make serve ARGS="--config portico.yaml"

.PHONY: serve test setup generate lint bench proto-baseline

serve:
	@scripts/setup-python.sh server
	.venv/bin/portico serve $(ARGS)

test:
	scripts/test.sh

setup:
	scripts/setup-python.sh dev
	npm ci --prefix tools --no-audit --no-fund --loglevel=error
	scripts/install-debian-packages.sh
	scripts/copy-googleapis-protos.sh

generate: setup
	scripts/install-go-tools.sh
	npm ci --prefix clients/ts --no-audit --no-fund --loglevel=error
	scripts/generate.sh

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy
	tools/node_modules/.bin/buf lint
	tools/node_modules/.bin/buf breaking proto --against proto/baseline.binpb

# Accepts the API as it now is as the baseline `buf breaking` compares against. Run it
# only as the deliberate act of accepting a breaking change (or of freezing a release,
# so fields added since the last baseline are protected too), and commit the result.
proto-baseline: setup
	tools/node_modules/.bin/buf build proto --exclude-source-info -o proto/baseline.binpb

# The comparison of issue-sized scenarios, written to bench/RESULTS.md: make bench [ARGS=--quick]
bench: setup
	@scripts/install-go-tools.sh || echo "make bench: the Go tools could not be installed; running without ghz"
	.venv/bin/python bench/run.py $(ARGS)
