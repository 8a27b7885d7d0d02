#!/usr/bin/env bash
# deps.sh - installs the Debian packages Herald builds, runs and tests with.
# As root it runs apt-get; otherwise it prints the command to run.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang-format
  liblua5.4-dev lua5.4 libcurl4-openssl-dev libpq-dev libhiredis-dev libmicrohttpd-dev
  libcjson-dev libssl-dev libcmocka-dev libedit-dev libjemalloc-dev
  postgresql redis-server lua-busted python3 python3-aiosmtpd jq python3-jsonschema python3-yaml python3-dkim python3-jinja2 python3-babel prometheus curl
  chromium chromium-driver python3-selenium
)
# sanitizer runtimes and clang for the libFuzzer harnesses (CI)
[ "${HERALD_DEPS_SANITIZE:-}" = 1 ] && PACKAGES+=(clang libclang-rt-14-dev)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "herald: missing Debian packages; run as root:" >&2
  echo "  apt-get update && $cmd" >&2
  exit 1
fi
echo "herald: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
