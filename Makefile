# Thin wrapper so the README's commands stay short; CMake does the real work.
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
BASELINE_BUILD ?= build-baseline
AVX2_BUILD ?= build-avx2
CUDA_BUILD ?= build-cuda
ARM64_BUILD ?= build-arm64
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 600
OUT ?= demo

.PHONY: all deps build cuda test test-release test-asan test-baseline test-avx2 test-ref test-arm64 \
	test-cuda demo bench clean fuzz-build fuzz test-fuzz

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
# numeric tests on each kernel set (src/model/kernels.h): portable (what a CPU without AVX2
# runs) and avx2 (what a CPU with AVX2 but no AVX-512 runs), each in a build whose other
# code is compiled for that CPU too, and ref (the reference layers) in the Release build;
# the aarch64 build of the op and model tests under qemu (neon), the CUDA backend compiled
# (its tests skip without a GPU), and each fuzzer for a minute. LPM_ISA picks the set.
NUMERIC_TESTS = 'fixtures|test_vmath|test_layers|test_mamba|test_model|test_train$$|test_ops'
test: test-release test-asan test-baseline test-avx2 test-ref test-arm64 test-cuda test-fuzz

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
	cd $(BASELINE_BUILD) && LPM_ISA=portable ctest --output-on-failure -j $(JOBS) -R $(NUMERIC_TESTS)

# (the CPU must offer the avx2 set: x86-64-v3, which is more than the avx2 flag)
test-avx2: test-release
	@if ! $(BUILD)/lpmnet info --cpu | grep '^offers' | grep -qw avx2; then \
		echo "this CPU does not offer the avx2 kernels (x86-64-v3): the AVX2 path is not tested"; else \
		cmake -S . -B $(AVX2_BUILD) -DCMAKE_BUILD_TYPE=Release \
			-DCMAKE_C_FLAGS="-DLPM_NO_CLONES -march=x86-64-v3" \
			-DLPM_FIXTURES_DIR=$(CURDIR)/$(BUILD)/fixtures >/dev/null && \
		cmake --build $(AVX2_BUILD) -j $(JOBS) && \
		cd $(AVX2_BUILD) && LPM_ISA=avx2 ctest --output-on-failure -j $(JOBS) -R $(NUMERIC_TESTS); fi

# The whole network on the reference layers (LPM_ISA=ref), against the PyTorch fixtures
# (model_small only: the reference takes ~40x the time of the avx512 set).
test-ref: test-release
	cd $(BUILD) && LPM_ISA=ref LPM_TEST_SMALL=1 ctest --output-on-failure -j $(JOBS) -R 'test_layers|test_mamba|test_model'

# test_ops and test_model cross-built for aarch64 (the neon and ref kernel sets) and run
# under qemu-user; skipped, saying why, where the cross toolchain or qemu is missing.
test-arm64: test-release
	@ARM64_BUILD=$(ARM64_BUILD) JOBS=$(JOBS) LPM_FIXTURES=$(CURDIR)/$(BUILD)/fixtures ./tests/run_arm64.sh

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

# Each kernel set this machine offers, timed (bench/by_path.sh; build-bench).
bench: deps
	@./bench/by_path.sh

# The README's main command: build, make a phantom pair, fuse it every way, score it.
demo: build
	@./scripts/demo.sh $(OUT)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(BASELINE_BUILD) $(AVX2_BUILD) $(ARM64_BUILD) $(CUDA_BUILD) $(FUZZ_BUILD)
