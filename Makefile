# sieve quick start:  make demo   |   make test
# Both install what is missing (scripts/install-deps.sh), configure and build first.
# BUILD_DIR, JOBS and CMAKE_ARGS may be overridden: make test JOBS=8

BUILD_DIR ?= build
ASAN_DIR  ?= build-asan
JOBS      ?= $(shell nproc)
CMAKE_ARGS ?=

# ccache entries are shared between clones of the repository (paths relative to the checkout).
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

.PHONY: all deps build demo test test-release test-asan bench clean help

all: build

help:
	@echo "make demo   install deps, build, run 'sieve attn --method all' on the built-in workload"
	@echo "make test   install deps, build, run every CPU test, then again under ASan+UBSan"
	@echo "make bench  build and run the CPU benchmarks (results: docs/results/)"

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	$(BUILD_DIR)/tools/sieve attn --method all

test-release: build
	cd $(BUILD_DIR) && ctest --output-on-failure -LE gpu -j $(JOBS)

$(ASAN_DIR)/build.ninja:
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DSIEVE_ENABLE_CUDA=OFF -DSIEVE_BUILD_TOOLS=ON \
	  -DSIEVE_BUILD_BENCHMARKS=OFF -DSIEVE_SANITIZE_ADDRESS=ON -DSIEVE_SANITIZE_UNDEFINED=ON $(CMAKE_ARGS)

test-asan: deps $(ASAN_DIR)/build.ninja
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -LE 'gpu|python' -j $(JOBS)

test: test-release test-asan

bench: build
	bash scripts/run-cpu-bench.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
