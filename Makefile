# mlops.mlflow developer entry points. Run from a fresh Debian machine as root
# (or a user with passwordless sudo).
.PHONY: test test-quick lint venv image demo demo-down

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
