# mlops.mlflow developer entry points. Run from a fresh Debian machine as root
# (or a user with passwordless sudo).
.PHONY: test test-extended test-quick test-arm64 test-trixie test-mariadb lint venv image demo demo-down bench

test:  ## The whole suite: lint, sanity, pytest (unit + real services), every molecule scenario
	scripts/test

test-extended:  ## Opt-in: the heavier scenarios make test leaves out for CI's time (onprem, faults, container, aws, restore, allinone, upgrade, hostloss, hostloss-sqlite)
	scripts/engine-bootstrap && scripts/build-test-image && scripts/build-container-base && scripts/wheelhouse
	PATH="$(CURDIR)/.venv/bin:$$PATH" molecule test -s onprem -s faults -s container -s aws -s restore -s allinone -s upgrade -s hostloss -s hostloss-sqlite

test-quick:  ## Everything but the Docker engine, image and molecule
	scripts/test --quick

test-arm64:  ## Opt-in: the pi scenario on a Debian 12 arm64 image under qemu emulation (about 50 min)
	scripts/engine-bootstrap --emulate arm64 && scripts/build-test-image --arch arm64 && scripts/wheelhouse --arch arm64
	PATH="$(CURDIR)/.venv/bin:$$PATH" molecule test -s arm64-pi

test-trixie:  ## pi, upgrade and onprem on Debian 13 alone (make test runs them too)
	scripts/engine-bootstrap && scripts/build-test-image --suite trixie && scripts/wheelhouse --suite trixie
	PATH="$(CURDIR)/.venv/bin:$$PATH" molecule test -s trixie-pi -s trixie-upgrade -s trixie-onprem

test-mariadb:  ## Opt-in: the all-in-one layout on MariaDB, upgraded 3.10.1 -> 3.17.2 (about 12 min; not in make test)
	scripts/engine-bootstrap && scripts/build-test-image && scripts/wheelhouse
	PATH="$(CURDIR)/.venv/bin:$$PATH" molecule test -s mariadb

venv:
	scripts/venv

image:
	scripts/engine-bootstrap && scripts/build-test-image && scripts/build-test-image --suite trixie

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
