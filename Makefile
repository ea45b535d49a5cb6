# Thin wrapper so the README's commands stay short; CMake does the real work.
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
OUT ?= demo

.PHONY: all deps build test test-release test-asan demo bench clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The README's test command: install, build, test, then the same tests under ASan+UBSan.
test: test-release test-asan

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: test-release
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLPM_SANITIZE=ON \
		-DLPM_FIXTURES_DIR=$(CURDIR)/$(BUILD)/fixtures >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

# The README's main command: build, make a phantom pair, fuse it every way, score it.
demo: build
	@./scripts/demo.sh $(OUT)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
