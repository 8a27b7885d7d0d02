# Herald's front door. The real work is in tools/ and CMake.
#   make run    install what is missing, build, start PostgreSQL + Redis, serve on :8080
#   make test   the same set-up, then every test through CTest
MAKEFLAGS  += --no-print-directory
BUILD      ?= build
BUILD_TYPE ?= RelWithDebInfo
CMAKE_FLAGS ?=

.PHONY: all deps build run test services stop format format-check clean

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

services: deps
	@tools/services.sh start

stop:
	@tools/services.sh stop

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan
