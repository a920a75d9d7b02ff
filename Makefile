# mlops.mlflow developer entry points. Run from a fresh Debian machine as root
# (or a user with passwordless sudo).
.PHONY: test test-quick lint venv image demo demo-down bench

test:  ## The whole suite: lint, sanity, pytest (unit + real services), every molecule scenario
	scripts/test

test-quick:  ## Everything but the Docker engine, image and molecule
	scripts/test --quick

venv:
	scripts/venv

image:
	scripts/engine-bootstrap && scripts/build-test-image

demo:  ## Converge the demo stack into a local container
	scripts/demo up

demo-down:
	scripts/demo down

bench:  ## Measure (real services and a converge container, about 2.5 h) and regenerate docs/benchmarks.md
	scripts/host-deps && scripts/venv && scripts/engine-bootstrap && scripts/build-test-image
	.venv/bin/python bench/tracking_throughput.py
	.venv/bin/python bench/converge_cost.py
	.venv/bin/python bench/footprint.py
	.venv/bin/python bench/model_load.py
	.venv/bin/python bench/artifact_throughput.py
	.venv/bin/python bench/demo_time.py
	.venv/bin/python bench/report.py
