# e3d2 -- the two commands that matter: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
E3D2   := $(VENV)/bin/e3d2
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements-blender.txt 2>/dev/null | cksum | cut -d' ' -f1)
DEMO_SONG := assets/music/Kevin_MacLeod_-_Vibe_Ace.hq.ogg

.PHONY: setup demo test test-core test-blender42 bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build of torch first, so no dependency pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet -r requirements-blender.txt
	rm -f $(VENV)/.installed-* && touch $@

# One generation: the Blender step keys the Motion the first command saved (headless.py --motion).
demo: setup
	mkdir -p out
	$(E3D2) generate $(DEMO_SONG) -o out/demo_dance.npz --seed 0 --preview out/demo_preview.mp4
	$(E3D2) score out/demo_dance.npz --audio $(DEMO_SONG)
	$(PY) blender_addon/headless.py -- --audio $(DEMO_SONG) --motion out/demo_dance.npz --out out/demo_dance.fbx --blend out/demo_dance.blend --fps 30
	@echo "demo written to out/: demo_dance.npz (Motion), demo_preview.mp4, demo_dance.fbx, demo_dance.blend"

test: setup
	$(PY) -m pytest -q

# The add-on's Blender 4.2 LTS branch (legacy actions, `sequences`): its own venv with PyPI's bpy 4.2 (no audio
# there, so the sound-strip tests skip; armature, keyframes and FBX run).
VENV42 := .venv-bpy42
STAMP42 := $(VENV42)/.installed-bpy42-1

$(STAMP42):
	test -x $(VENV42)/bin/python || $(PYTHON) -m venv $(VENV42)
	$(VENV42)/bin/python -m pip install --quiet --upgrade pip
	$(VENV42)/bin/python -m pip install --quiet torch==2.13.0
	$(VENV42)/bin/python -m pip install --quiet "bpy==4.2.*" "numpy<2" scipy smplx soundfile pyyaml pytest
	touch $@

test-blender42: $(STAMP42)
	$(VENV42)/bin/python -m pytest -q tests/test_addon_blender.py tests/test_addon_workflow.py tests/test_addon_pure.py

bench: setup
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) out dist .pytest_cache
