# Rusty — convenience front end over CMake. Every target first makes sure the
# Debian packages it needs are installed (scripts/deps.sh).
#
#   make run      build build/rusty (release) and run the built-in demo
#   make test     build with ASan+UBSan in build-test/ and run every test (ctest), then the
#                 release build/ and its GPU tests (ctest -L cuda; skipped without a GPU)
#   make build    just the release build
#   make fuzz     build the libFuzzer targets (clang) and run each FUZZ_SECONDS
#   make bench    run the CPU benchmarks (bench/cpu.sh)
#   make format   clang-format every C/CUDA source in place
#   make lint     clang-tidy + cppcheck
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 30
SOURCES = $(shell git ls-files '*.c' '*.h' '*.cu' '*.cuh' 2>/dev/null)

.PHONY: all build run test fuzz bench format lint clean deps

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build -j $(JOBS) -- --no-print-directory

run: build
	./build/rusty run

test: deps
	@# first the release build (with the CUDA backend when nvcc exists) and its
	@# GPU tests, which report "skipped" on machines without a GPU; then the
	@# whole suite under ASan/UBSan, whose summary is the closing line
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build -j $(JOBS) -- --no-print-directory
	@cd build && ctest --output-on-failure -L cuda
	@cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DRUSTY_SANITIZE=ON -DRUSTY_WERROR=ON \
		-DRUSTY_CUDA=OFF >/dev/null
	@cmake --build build-test -j $(JOBS) -- --no-print-directory
	@cd build-test && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS)

fuzz:
	@scripts/deps.sh --fuzz
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRUSTY_FUZZ=ON \
		-DRUSTY_CUDA=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	@scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

bench: build
	@bench/cpu.sh

format:
	clang-format -i $(SOURCES)

# Any finding fails `make lint`. clang-tidy gets one file per process, JOBS at a
# time: in a multi-file run clang-tidy 14 reports every va_list after va_start as
# uninitialised in all files but the first. cppcheck reads cJSON.h first so that
# it knows cJSON_ArrayForEach (otherwise it gives up on files that use it).
CJSON_H ?= /usr/include/cjson/cJSON.h
# bench/peer/ (the llama.cpp harness's cuBLAS forwarder) and tests/ref/ (reference
# makers linked to llama.cpp) build against headers outside the CMake build whose
# flags clang-tidy reads.
lint: build
	@printf '%s\n' $(filter-out bench/peer/% tests/ref/%,$(filter %.c,$(SOURCES))) | \
		xargs -P $(JOBS) -n 1 clang-tidy -p build --quiet --warnings-as-errors='*'
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --inline-suppr \
		--suppress=missingIncludeSystem -I src --include=$(CJSON_H) \
		$(filter src/%.c cli/%.c,$(SOURCES))

clean:
	rm -rf build build-test build-fuzz
