# Inferneo — top-level driver. `make` builds build/inferneo; `make test` runs every test tier;
# `make run` serves the bundled model. SANITIZE=address,undefined builds into build-san/.
# CC=clang (any CC whose name contains "clang") builds into build-clang/ (build-clang-san/ with
# SANITIZE), passing CMAKE_C_COMPILER, so gcc and clang objects never share a build dir.
# `make fuzz FUZZ_SECONDS=N` builds the libFuzzer targets (tests/fuzz/fuzz_*.c, clang with
# ASan+UBSan, INF_FUZZ=ON) into build-fuzz/ and runs each for N seconds from its seed corpus
# (tests/fuzz/corpus/<name>/); new corpus entries and crash files stay in build-fuzz/.
SANITIZE ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
ifneq ($(findstring clang,$(CC)),)
BUILD_SUFFIX := -clang
CMAKE_CC := -DCMAKE_C_COMPILER=$(CC)
endif
ifeq ($(SANITIZE),)
BUILD ?= build$(BUILD_SUFFIX)
else
BUILD ?= build$(BUILD_SUFFIX)-san
endif
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD ?= build-fuzz
MODEL ?= models/stories260K.gguf
PORT ?= 8000

.PHONY: all build deps test run clean format fuzz fuzz-build fuzz-seeds

all: build

deps:
	@scripts/install-deps.sh --if-missing

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DINF_SANITIZE=$(SANITIZE) $(CMAKE_CC)

build: $(BUILD)/Makefile
	cmake -S . -B $(BUILD) -DINF_SANITIZE=$(SANITIZE) > /dev/null
	cmake --build $(BUILD) -j $(JOBS)

test: deps
	$(MAKE) build
	@if [ -f tests/node/package.json ] && [ ! -d tests/node/node_modules ]; then \
	    (cd tests/node && npm install --no-audit --no-fund --loglevel=error); fi
	cd $(BUILD) && ctest --output-on-failure -j 2

run: deps
	$(MAKE) build
	$(BUILD)/inferneo serve -m $(MODEL) --port $(PORT)

$(FUZZ_BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=$(FUZZ_CC) -DINF_FUZZ=ON

fuzz-build: $(FUZZ_BUILD)/Makefile
	cmake -S . -B $(FUZZ_BUILD) -DINF_FUZZ=ON > /dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_all

fuzz: deps
	$(MAKE) fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Rewrites the committed GGUF seeds (tests/fuzz/gen_seeds.c; deterministic output).
fuzz-seeds:
	$(MAKE) fuzz-build
	$(FUZZ_BUILD)/fuzz/gen_fuzz_seeds tests/fuzz/corpus/gguf

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san build-clang build-clang-san build-fuzz
