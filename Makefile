# Sketch2Mesh: the README's two commands are `make demo` and `make test`.
# Every target sets up what is missing first, so a fresh clone needs nothing else.

PYTHON ?= python3.11
SERVER_PY := .venv/bin/python
BPY42_PY := .venv-bpy42/bin/python
BPY50_PY := .venv-bpy50/bin/python
BPY45_PY := .venv-bpy45/bin/python
DEMO ?= spot
PYTEST_FLAGS ?= -q -ra
FAST_FLAGS ?= -m "not slow"

.PHONY: .libusb setup demo test test-fast test-server test-addon test-bpy45 extension bench weights clean

setup: .venv/.ready .venv-bpy42/.ready .venv-bpy50/.ready

# open3d 0.20 needs libusb at import time; install it from Debian where it is missing.
.libusb:
	@if [ "$$(uname)" = Linux ] && command -v dpkg >/dev/null && ! dpkg -s libusb-1.0-0 >/dev/null 2>&1; then \
	  echo "Installing libusb-1.0-0 (needed by open3d)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -q libusb-1.0-0 >/dev/null || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q libusb-1.0-0 >/dev/null; }; \
	fi

.venv/.ready: requirements/server.txt requirements/runtime.txt pyproject.toml | .libusb
	$(PYTHON) -m venv .venv
	$(SERVER_PY) -m pip install -q --upgrade pip
	$(SERVER_PY) -m pip install -q -r requirements/server.txt
	$(SERVER_PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(SERVER_PY) -c "import torch, open3d, scipy, PIL, model_server"
	touch $@

.venv-bpy%/.ready: requirements/bpy%.txt
	$(PYTHON) -m venv .venv-bpy$*
	.venv-bpy$*/bin/python -m pip install -q --upgrade pip
	.venv-bpy$*/bin/python -m pip install -q -r $<
	.venv-bpy$*/bin/python -c "import bpy; print('bpy', bpy.app.version_string)"
	touch $@

# The default backend (round) in Blender and from the PNGs; the learned one, with the shipped weights, beside it.
demo: setup
	mkdir -p out
	$(SERVER_PY) -m model_server reconstruct --front examples/$(DEMO)/front.png --side examples/$(DEMO)/side.png \
	  --out out/$(DEMO)_from_png.ply --report out/$(DEMO)_from_png.json
	$(SERVER_PY) -m model_server reconstruct --front examples/$(DEMO)/front.png --side examples/$(DEMO)/side.png \
	  --backend learned --out out/$(DEMO)_learned.ply --report out/$(DEMO)_learned.json
	$(BPY50_PY) sketch2mesh_addon/headless.py -- --strokes examples/$(DEMO)/strokes.json \
	  --server-python $(CURDIR)/$(SERVER_PY) --out out/$(DEMO).blend --out out/$(DEMO).glb --render out/$(DEMO).png
	@echo "Demo written: out/$(DEMO).blend, out/$(DEMO).glb, out/$(DEMO).png (and out/$(DEMO)_from_png.ply from the PNG sketches, out/$(DEMO)_learned.ply with the learned backend)"

test: setup
	$(MAKE) --no-print-directory test-server test-addon

test-server: .venv/.ready
	$(SERVER_PY) -m pytest $(PYTEST_FLAGS) tests/model_server

test-addon: .venv/.ready .venv-bpy42/.ready .venv-bpy50/.ready
	SKETCH2MESH_SERVER_PYTHON=$(CURDIR)/$(SERVER_PY) $(BPY42_PY) -m pytest $(PYTEST_FLAGS) tests/addon
	SKETCH2MESH_SERVER_PYTHON=$(CURDIR)/$(SERVER_PY) $(BPY50_PY) -m pytest $(PYTEST_FLAGS) tests/addon

# The fast lane: every test not marked slow, the server's and the add-on's on bpy 4.2 and 5.0
# (about 6 minutes on two cores). `make test` still runs everything, slow tests included.
test-fast: .venv/.ready .venv-bpy42/.ready .venv-bpy50/.ready
	$(SERVER_PY) -m pytest $(PYTEST_FLAGS) $(FAST_FLAGS) tests/model_server
	SKETCH2MESH_SERVER_PYTHON=$(CURDIR)/$(SERVER_PY) $(BPY42_PY) -m pytest $(PYTEST_FLAGS) $(FAST_FLAGS) tests/addon
	SKETCH2MESH_SERVER_PYTHON=$(CURDIR)/$(SERVER_PY) $(BPY50_PY) -m pytest $(PYTEST_FLAGS) $(FAST_FLAGS) tests/addon

# Blender 4.5 LTS is supported too; its environment is optional because CI's time is finite.
test-bpy45: .venv/.ready .venv-bpy45/.ready
	SKETCH2MESH_SERVER_PYTHON=$(CURDIR)/$(SERVER_PY) $(BPY45_PY) -m pytest $(PYTEST_FLAGS) tests/addon

# The zip an artist installs: the add-on, the server it sets up and the pinned requirements.
extension: .venv-bpy50/.ready
	$(BPY50_PY) tools/build_extension.py --out dist

bench: setup
	$(SERVER_PY) benchmarks/bench_pipeline.py
	$(SERVER_PY) benchmarks/bench_pipeline.py --robustness
	$(SERVER_PY) benchmarks/bench_cli.py
	$(SERVER_PY) benchmarks/bench_fitting.py
	SKETCH2MESH_SERVER_PYTHON=$(CURDIR)/$(SERVER_PY) $(BPY50_PY) benchmarks/bench_end_to_end.py

# The shipped weights' recipe (README, "The learned backend"): real objects from Debian's
# sweethome3d-furniture package (fetched and unpacked into WORK the first time, no root) and
# procedural shapes, then the field design, then the fp16 weights and the credits of the real
# objects it learned from. Data and runs live outside the repository, so a fresh checkout does
# not wipe them; every step resumes where it stopped, so run it again after an interruption.
WORK ?= $(HOME)/.cache/sketch2mesh
HOLD_OUT ?= mug,car,characters,lights,bathroom
PROCEDURAL ?= 720
STEPS ?= 3400
FINAL_STEPS ?= 5700
TRAIN = $(SERVER_PY) -m model_server train --data $(WORK)/procedural $(WORK)/real \
	--out $(WORK)/runs/field.pt --hold-out $(HOLD_OUT) --batch 8 --workers 0 --checkpoint-every 100
weights: .venv/.ready
	$(SERVER_PY) -m model_server dataset --out $(WORK)/real --sweethome $(WORK)/sweethome3d --seed 0
	$(SERVER_PY) -m model_server dataset --out $(WORK)/procedural --count $(PROCEDURAL) --seed 0
	$(TRAIN) --lr 1e-3 --steps $(STEPS) $(if $(wildcard $(WORK)/runs/field.pt),--resume $(WORK)/runs/field.pt)
	$(TRAIN) --lr 2e-4 --steps $(FINAL_STEPS) --resume $(WORK)/runs/field.pt
	$(SERVER_PY) -m model_server export-weights $(WORK)/runs/field.pt --out model_server/weights/learned.pt
	$(SERVER_PY) -m model_server attribution --data $(WORK)/real --sweethome $(WORK)/sweethome3d \
	  --hold-out $(HOLD_OUT) --out docs/ATTRIBUTION.md

clean:
	rm -rf out build dist
