#!/usr/bin/env bash
# test.sh - `make test`: services, migrations, then every test through CTest.
# Services this script started are stopped again at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}

was_running=0
tools/services.sh status >/dev/null 2>&1 && was_running=1
# The env eval below sets HERALD_*_URL; stopping must see the caller's values
# (empty: ours to stop), not the ones we exported.
orig_db=${HERALD_DATABASE_URL-}
orig_redis=${HERALD_REDIS_URL-}
stop_services() {
  HERALD_DATABASE_URL=$orig_db HERALD_REDIS_URL=$orig_redis "$ROOT/tools/services.sh" stop
}
[ "$was_running" = 1 ] || trap stop_services EXIT
tools/services.sh start
eval "$(tools/services.sh env)"

"$BUILD/herald" migrate
cd "$BUILD"
ctest --output-on-failure -j "${HERALD_TEST_JOBS:-2}" ${CTEST_ARGS:-}
