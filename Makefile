# Two commands: `make bench` (the main job) and `make test`. Both first bring .venv up to date;
# the stamp is keyed on pyproject.toml, this Makefile and the C extension's source, so a second
# run installs nothing.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
EXT_SRC := loaders/_native.c
STAMP   := $(VENV)/.stamp-$(shell cat pyproject.toml Makefile $(EXT_SRC) | cksum | cut -d' ' -f1)
# FFCV builds against libturbojpeg and OpenCV; loaders/_native.c against libjpeg(-turbo)
APT_PKGS := pkg-config libturbojpeg0-dev libopencv-dev libjpeg-dev
# dataset-fashion-mnist: real 28 px images for the small-images recipe (--data fashion-mnist)
APT_DATA := dataset-fashion-mnist
# chromium: the report test renders the HTML headless (optional: skipped where apt lacks it)
APT_OPT  := chromium

.PHONY: venv test bench report clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile $(EXT_SRC)
	@# Build deps (FFCV, the C extension) and data; installed where we may (root + apt).
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && { ! pkg-config --exists opencv4 libturbojpeg 2>/dev/null || [ ! -f /usr/include/jpeglib.h ] || [ ! -d /usr/share/datasets/fashion-mnist ]; }; then \
	  echo "installing build deps and data: $(APT_PKGS) $(APT_DATA)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PKGS) $(APT_DATA) >/dev/null; \
	fi
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v chromium >/dev/null; then \
	  (apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_OPT) >/dev/null) || echo "note: $(APT_OPT) not installed; the HTML render test will be skipped"; \
	fi
	@[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,dali,ffcv]'
	@rm -f $(VENV)/.stamp-*
	@touch $@

test: venv
	$(BIN)/python -m pytest -q

# The main job: every loader alone, then a short accuracy run of the demo network, then the
# report (results/REPORT.md, report.html, plots/); it ends with this run's table, then where
# the records and the report went (--since: the records written after the start stamp).
bench: venv
	@date -u +%Y-%m-%dT%H:%M:%S > $(VENV)/.bench-start
	$(BIN)/python -m bench.run --mode ceiling --out results
	$(BIN)/python -m bench.run --mode loader --loader all --steps 40 --out results
	$(BIN)/python -m bench.run --mode accuracy --recipe cpu-demo --loader torchvision --out results
	$(BIN)/python -m bench.report --since "$$(cat $(VENV)/.bench-start)"

report: venv
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
