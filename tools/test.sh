#!/usr/bin/env bash
# test.sh - `make test`: services, migrations, then every test through CTest.
# Services this script started are stopped again at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}

was_running=0
tools/services.sh status >/dev/null 2>&1 && was_running=1
[ "$was_running" = 1 ] || trap "\"$ROOT/tools/services.sh\" stop" EXIT
tools/services.sh start
eval "$(tools/services.sh env)"

"$BUILD/herald" migrate
cd "$BUILD"
ctest --output-on-failure -j "${HERALD_TEST_JOBS:-2}" ${CTEST_ARGS:-}
