# Inferneo — top-level driver. `make` builds build/inferneo; `make test` runs every test tier;
# `make run` serves the bundled model. SANITIZE=address,undefined builds into build-san/.
SANITIZE ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
ifeq ($(SANITIZE),)
BUILD ?= build
else
BUILD ?= build-san
endif
MODEL ?= models/stories260K.gguf
PORT ?= 8000

.PHONY: all build deps test run clean format

all: build

deps:
	@scripts/install-deps.sh --if-missing

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DINF_SANITIZE=$(SANITIZE)

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

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san
