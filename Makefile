# SPP testbed: the targets are the user interface.
#   make run     start a testbed (TOPO=default|geni5|FILE) and a Mininet CLI with SPP commands
#   make demo    non-interactive end-to-end demo (ping, iperf3, traceroute, isolation)
#   make test    pytest suite, then the PTF suite when BMv2 is installed
#   make ptf     PTF packet tests of npe.p4 and lc.p4 against simple_switch_grpc
#   make bench   benchmarks -> docs/benchmarks.md
#   make p4      recompile p4/*.p4 into p4/build/ (needs p4c-bm2-ss)
#   make clean   remove leftovers of a crashed run (namespaces, veths, switches)

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
P4C ?= p4c-bm2-ss
TOPO ?= default
ARGS ?=
P4_SRC := $(wildcard p4/include/*.p4 p4/include/control/*.p4)
P4_OUT := p4/build/npe.json p4/build/npe.p4info.txtpb p4/build/lc.json p4/build/lc.p4info.txtpb

.PHONY: help venv p4 p4-if-possible check check-bmv2 run demo test ptf bench clean

help:
	@sed -n '2,9p' Makefile | sed 's/^# //'

# The controller's encoder processes (controller/encoder.py) use protobuf's
# compiled implementation from a directory of its own: p4runtime-shell pins
# the venv's protobuf to the pure-Python 3.20.
ENCODER_PROTOBUF := protobuf>=5.26,<7

$(PY): pyproject.toml
	/usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m pip install -q --no-deps --upgrade --target $(VENV)/encoder-protobuf '$(ENCODER_PROTOBUF)'
	@touch $(PY)

venv: $(PY)

# Compile our P4 programs. The outputs are committed, so everything else
# works without p4c; tests/test_p4_build.py fails when they are stale.
p4:
	@command -v $(P4C) >/dev/null || { echo "$(P4C) not found: install p4c (see README, Prerequisites)"; exit 1; }
	$(P4C) --arch v1model --std p4-16 -o p4/build/npe.json --p4runtime-files p4/build/npe.p4info.txtpb p4/npe.p4
	$(P4C) --arch v1model --std p4-16 -o p4/build/lc.json --p4runtime-files p4/build/lc.p4info.txtpb p4/lc.p4
	$(P4C) --arch v1model --std p4-16 -o bench/p4/build/minimal.json --p4runtime-files bench/p4/build/minimal.p4info.txtpb bench/p4/minimal.p4

p4-if-possible:
	@if command -v $(P4C) >/dev/null; then $(MAKE) --no-print-directory p4; \
	 else echo "note: $(P4C) not found, using the committed p4/build/ outputs"; fi

check:
	@for t in simple_switch_grpc p4c-bm2-ss mn; do \
	  printf '%-19s: %s\n' "$$( [ $$t = mn ] && echo mininet || echo $$t )" \
	    "$$(command -v $$t || echo 'MISSING (see README, Prerequisites)')"; done

check-bmv2:
	@command -v simple_switch_grpc >/dev/null || { \
	  echo "simple_switch_grpc not found. BMv2 (with PI/P4Runtime) is a prerequisite:"; \
	  echo "see README.md, Prerequisites."; exit 1; }

run: $(PY) check-bmv2 p4-if-possible
	$(PY) -m mininet_topo.run --topo $(TOPO) $(ARGS)

demo: $(PY) check-bmv2 p4-if-possible
	$(PY) -m mininet_topo.demo --topo $(TOPO) $(ARGS)

# pytest runs everything; the PTF and end-to-end tests skip, saying why,
# when BMv2 is missing.
test: $(PY)
	$(PY) -m pytest

ptf: $(PY) check-bmv2
	$(PY) -m ptf_tests.runner

bench: $(PY) check-bmv2
	$(PY) -m bench.run $(ARGS)

clean:
	-$(PY) -m mininet_topo.cleanup 2>/dev/null || /usr/bin/python3 -m mininet_topo.cleanup
	rm -rf .pytest_cache build *.egg-info
