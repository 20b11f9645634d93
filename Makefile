# The README's two commands: `make demo` (the main job) and `make test`.
# Both set themselves up on a fresh Debian/Ubuntu machine with Python 3.11: a venv in .venv,
# the pinned ROS 2 Kilted wheels and torch from PyPI, then this package built by CMake
# (scikit-build-core) into the venv. Every step is idempotent.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
DEMO_SECONDS ?= 60
# The demo's robots compute DEMO_SLOWDOWN times slower than this PC (Jetson-class devices):
# then one robot cannot keep up with DEMO_RATE frames/s and MDI-Exit spreads the work, first
# tasks included (offload_first_task), after a slow start (docs/ALGORITHMS.md, 24 and 25).
DEMO_SLOWDOWN ?= 20
DEMO_RATE ?= 50
DEMO_FLAGS = --rate $(DEMO_RATE) $(foreach r,1 2 3 4 5,--set robot$(r).compute_slowdown=$(DEMO_SLOWDOWN))
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: demo test install venv data lint bench mutation clean fuzz soak test-jazzy install-jazzy multihost

# The 5-robot mesh of the paper on this machine, fed Fashion-MNIST by the image player, with
# the live monitor; it stops after DEMO_SECONDS and prints the fleet's summary.
demo: install data
	$(VENV)/bin/mdi-exit fleet mesh5 --duration $(DEMO_SECONDS) --monitor $(DEMO_FLAGS)

# Two pytest processes: the suite, then the multi-host tests, which need a process of their
# own (test/conftest.py says why) and skip themselves, with the reason, without root or
# `ip netns`. Both always run; the exit code is the suite's if it failed, else the second's.
test: install data
	cd test && ../$(VENV)/bin/pytest --ignore=test_multihost.py; suite=$$?; \
	  ../$(VENV)/bin/pytest test_multihost.py; multihost=$$?; \
	  if [ $$suite -ne 0 ]; then exit $$suite; fi; exit $$multihost

# The multi-host tests alone (root; network namespaces; docs/TESTING.md), ~4-6 minutes.
multihost: install
	cd test && ../$(VENV)/bin/pytest test_multihost.py

# The hostile-input test at full size: 10,000 random and mutated messages (CI sends 2,000).
fuzz: install
	cd test && MDI_FUZZ_MESSAGES=10000 ../$(VENV)/bin/pytest -s test_nodes_fuzz.py

# Overload soak (issue #9, item 5; docs/RELIABILITY.md): mesh5, every robot 100x slower, Poisson
# arrivals at 3x the fleet's capacity for SOAK_SECONDS in threshold mode, then in rate mode;
# fails unless queues, memory, frame accounting and log rates stay within their bounds.
# About 10 minutes; `make test` runs a 2 x 30 s version (test/test_soak.py).
SOAK_SECONDS ?= 240
soak: install data
	$(VENV)/bin/mdi-exit soak --seconds $(SOAK_SECONDS)

lint: install
	$(VENV)/bin/ruff check mdi_exit_ros test launch

bench: install
	$(VENV)/bin/mdi-exit bench wire

# Mutation testing of mdi_exit_ros/core/ with mutmut (config: [tool.mutmut] in pyproject.toml),
# running only the core tests; prints the kill rate per module and fails below MUTATION_MIN %.
# Not part of `make test`. See docs/TESTING.md. A fresh run takes ~10 min with 2 workers.
MUTATION_JOBS ?= 2
MUTATION_MIN ?= 90
mutation: install
	rm -rf mutants
	nice -n 10 $(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS) > mutants.log 2>&1 || \
	  (tail -c 3000 mutants.log; exit 1)
	$(PY) test/mutation_score.py --min $(MUTATION_MIN) --list

# torch and the build requirements (listed once, in pyproject.toml) go in first: the package
# is built without build isolation so that CMake's build/ folder is reused between runs.
$(VENV)/.deps-stamp: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=23.1"
	$(PIP) install torch==2.14.1 torchvision==0.29.1
	$(PY) -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires']))" > $(VENV)/build-requirements.txt
	$(PIP) install -r $(VENV)/build-requirements.txt
	touch $@

venv: $(VENV)/.deps-stamp

install: venv
	$(PIP) install --no-build-isolation ".[test,sim]"

# ROS 2 Jazzy (LTS): the same package built and tested against the ros-jazzy-* wheels, in a
# venv of its own ($(JAZZY_VENV)) and a CMake build folder of its own (build/jazzy). The ros-*
# pins come from requirements/jazzy.txt, everything else from pyproject.toml (the package goes
# in with --no-deps: its own ros-* pins are Kilted's). Not part of `make test`: it builds a
# second environment (~3 min) and runs the suite again (see docs/TESTING.md).
JAZZY_VENV ?= .venv-jazzy
JAZZY_PY := $(JAZZY_VENV)/bin/python
JAZZY_PIP := $(JAZZY_PY) -m pip --disable-pip-version-check

$(JAZZY_VENV)/.deps-stamp: pyproject.toml requirements/jazzy.txt
	test -x $(JAZZY_PY) || $(PYTHON) -m venv $(JAZZY_VENV)
	$(JAZZY_PIP) install --upgrade "pip>=23.1"
	$(JAZZY_PY) -c "import tomllib; t = tomllib.load(open('pyproject.toml', 'rb')); \
	  reqs = t['build-system']['requires'] + t['project']['dependencies'] + \
	    t['project']['optional-dependencies']['test'] + t['project']['optional-dependencies']['sim']; \
	  print('\n'.join(r for r in reqs if not r.startswith('ros-')))" > $(JAZZY_VENV)/non-ros-requirements.txt
	$(JAZZY_PIP) install -r $(JAZZY_VENV)/non-ros-requirements.txt -r requirements/jazzy.txt
	touch $@

install-jazzy: $(JAZZY_VENV)/.deps-stamp
	$(JAZZY_PIP) install --no-build-isolation --no-deps -C build-dir=build/jazzy .
	$(JAZZY_PY) -P -c "import rclpy.lifecycle, mdi_exit_ros.msg; print('Jazzy install OK')"

test-jazzy: install-jazzy data
	cd test && ../$(JAZZY_VENV)/bin/pytest --ignore=test_multihost.py

# Fashion-MNIST comes from Debian's dataset-fashion-mnist (the demo's feed). Tests skip
# what needs it when it is missing and apt cannot install it.
data:
	@if [ ! -d $(FASHION_MNIST) ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -q dataset-fashion-mnist || \
	     (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)) || \
	    echo "warning: could not install dataset-fashion-mnist"; \
	  else \
	    echo "note: $(FASHION_MNIST) is missing; run 'sudo apt-get install dataset-fashion-mnist'"; \
	  fi; \
	fi

clean:
	rm -rf build dist *.egg-info mutants mutants.log
