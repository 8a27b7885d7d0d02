# Herald's front door. The real work is in tools/ and CMake.
#   make run    install what is missing, build, start PostgreSQL + Redis, serve on :8080
#   make test   the same set-up, then every test through CTest
MAKEFLAGS  += --no-print-directory
BUILD      ?= build
BUILD_TYPE ?= RelWithDebInfo
CMAKE_FLAGS ?=

.PHONY: all deps build run test test-faults services stop fuzz bench bench-http bench-policy bench-transport bench-analytics bench-e2e bench-e2e-smoke soak format format-check clean

all: build

deps:
	@tools/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j 2

run: build
	@tools/run.sh

test: build
	@BUILD=$(BUILD) tools/test.sh

# the fault matrix alone (tests labelled `faults`: tests/CMakeLists.txt)
test-faults: build
	@BUILD=$(BUILD) CTEST_ARGS="-L faults $(CTEST_ARGS)" tools/test.sh

services: deps
	@tools/services.sh start

stop:
	@tools/services.sh stop

bench-http: build
	@tools/bench-http.sh

bench: build
	@tools/bench-pipeline.sh 15

bench-transport: build
	@tools/bench-transport.sh 20000 8

bench-policy: build
	@$(BUILD)/bench_policy 20000

bench-analytics: build
	@tools/bench-analytics.sh

# The workload users have, end to end (tools/bench/e2e.sh, docs/benchmarks.md):
# RATE (1000), DURATION (15), CLIENTS, MODES ("fixed max prefs"), PEER=dir.
bench-e2e: build
	@BUILD=$(BUILD) tools/bench/e2e.sh

# The same for 5 s a run: a smoke check with no thresholds (CI may run it).
bench-e2e-smoke: build
	@BUILD=$(BUILD) DURATION=$${DURATION:-5} CLIENTS=$${CLIENTS:-200} WARMUP=$${WARMUP:-1} tools/bench/e2e.sh

# 30 minutes at 1,000 requests/s (RATE, DURATION, SAMPLE): memory and the job table.
soak: build
	@BUILD=$(BUILD) tools/bench/soak.sh

# libFuzzer harnesses (tests/fuzz), FUZZ_SECONDS each; FUZZERS="fuzz_form ..."
# picks some. Each starts from its working corpus (build-fuzz/corpus/NAME,
# where new inputs go) and reads its seeds (tests/fuzz/corpus/NAME) too.
FUZZ_SECONDS ?= 60
FUZZERS ?=
fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DHERALD_FUZZ=ON -DHERALD_SANITIZE=ON \
		-DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build build-fuzz -j 2
	@for f in $(if $(FUZZERS),$(addprefix build-fuzz/,$(FUZZERS)),build-fuzz/fuzz_*); do \
		case $$f in *.log) continue ;; esac; \
		echo "fuzz: $$f for $(FUZZ_SECONDS) s"; \
		mkdir -p build-fuzz/corpus/$$(basename $$f); \
		seeds=tests/fuzz/corpus/$$(basename $$f); [ -d $$seeds ] || seeds=; \
		$$f -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus/$$(basename $$f) $$seeds \
			>build-fuzz/$$(basename $$f).log 2>&1 || { tail -n 40 build-fuzz/$$(basename $$f).log; exit 1; }; \
		tail -n 1 build-fuzz/$$(basename $$f).log; \
	done

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz
