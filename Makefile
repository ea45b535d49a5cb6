# Thin wrapper so the README's commands stay short; CMake does the real work.
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
BASELINE_BUILD ?= build-baseline
AVX2_BUILD ?= build-avx2
CUDA_BUILD ?= build-cuda
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 600
OUT ?= demo

.PHONY: all deps build cuda test test-release test-asan test-baseline test-avx2 test-cuda demo bench clean \
	fuzz-build fuzz test-fuzz

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The GPU-enabled tool (needs nvcc; cuBLAS): build-cuda/lpmnet --device cuda.
cuda: deps
	@cmake -S . -B $(CUDA_BUILD) -DCMAKE_BUILD_TYPE=Release -DLPM_CUDA=ON \
		-DLPM_FIXTURES_DIR=$(CURDIR)/$(BUILD)/fixtures >/dev/null
	@cmake --build $(CUDA_BUILD) -j $(JOBS)

# The README's test command: install, build, test, the same tests under ASan+UBSan, the
# numeric tests on the baseline x86-64 code path (what a CPU without AVX2 runs) and on the
# AVX2 path (what a CPU with AVX2 but no AVX-512 runs, whatever this one has), the CUDA
# backend compiled (its tests skip without a GPU), and each fuzzer for a minute.
NUMERIC_TESTS = 'fixtures|test_vmath|test_layers|test_mamba|test_model|test_train$$|test_ops'
test: test-release test-asan test-baseline test-avx2 test-cuda test-fuzz

test-cuda: test-release
	@if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then \
		$(MAKE) --no-print-directory cuda && cd $(CUDA_BUILD) && ctest --output-on-failure -R 'fixtures|test_cuda'; \
	else echo "no nvcc: the CUDA backend is not built"; fi

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: test-release
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLPM_SANITIZE=ON \
		-DLPM_FIXTURES_DIR=$(CURDIR)/$(BUILD)/fixtures >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

test-baseline: test-release
	@cmake -S . -B $(BASELINE_BUILD) -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_C_FLAGS="-DLPM_NO_CLONES -march=x86-64" \
		-DLPM_FIXTURES_DIR=$(CURDIR)/$(BUILD)/fixtures >/dev/null
	@cmake --build $(BASELINE_BUILD) -j $(JOBS)
	cd $(BASELINE_BUILD) && ctest --output-on-failure -j $(JOBS) -R $(NUMERIC_TESTS)

test-avx2: test-release
	@if ! grep -qw avx2 /proc/cpuinfo; then echo "no AVX2 on this CPU: the AVX2 path is not tested"; else \
		cmake -S . -B $(AVX2_BUILD) -DCMAKE_BUILD_TYPE=Release \
			-DCMAKE_C_FLAGS="-DLPM_NO_CLONES -march=x86-64-v3" \
			-DLPM_FIXTURES_DIR=$(CURDIR)/$(BUILD)/fixtures >/dev/null && \
		cmake --build $(AVX2_BUILD) -j $(JOBS) && \
		cd $(AVX2_BUILD) && ctest --output-on-failure -j $(JOBS) -R $(NUMERIC_TESTS); fi

# libFuzzer harnesses (fuzz/, docs/fuzzing.md): clang, the library under ASan+UBSan, seeds
# written into $(FUZZ_BUILD)/seeds. `make fuzz` runs each harness FUZZ_SECONDS, one after the
# other; `make test-fuzz` a minute each. Both fail when a harness finds a crash, a leak or a
# sanitizer error (the input goes to $(FUZZ_BUILD)/artifacts/).
fuzz-build: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLPM_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz

fuzz: fuzz-build
	@./fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

test-fuzz: fuzz-build
	@./fuzz/run.sh $(FUZZ_BUILD) 60

# The README's main command: build, make a phantom pair, fuse it every way, score it.
demo: build
	@./scripts/demo.sh $(OUT)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(BASELINE_BUILD) $(AVX2_BUILD) $(CUDA_BUILD) $(FUZZ_BUILD)
