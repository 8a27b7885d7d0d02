#!/usr/bin/env bash
# test.sh - `make test`: services, migrations, then every test through CTest.
# Services this script started are stopped again at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}

# Stop at the end only the services this run started; ones already running
# (a `make run` in another terminal) are left alone.
orig_db=${HERALD_DATABASE_URL-}
orig_redis=${HERALD_REDIS_URL-}
started=()
tools/services.sh status pg >/dev/null 2>&1 || started+=(pg)
tools/services.sh status redis >/dev/null 2>&1 || started+=(redis)
stop_services() {
  # The env eval below exports HERALD_*_URL; stopping must see the caller's values.
  for s in "${started[@]}"; do
    HERALD_DATABASE_URL=$orig_db HERALD_REDIS_URL=$orig_redis "$ROOT/tools/services.sh" stop "$s"
  done
}
trap stop_services EXIT
tools/services.sh start
eval "$(tools/services.sh env)"

"$BUILD/herald" migrate
cd "$BUILD"
ctest --output-on-failure -j "${HERALD_TEST_JOBS:-2}" ${CTEST_ARGS:-}
