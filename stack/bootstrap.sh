#!/usr/bin/env bash
# Installs what the local stack needs that is not in the Python lockfile, then the locked
# Python environment. Idempotent: every step checks first, so a second run takes seconds.
#   - uv (pinned, from PyPI)          - the Python 3.11 environment from uv.lock (uv sync --frozen)
#   - Redis, a Java runtime, Maven, Chromium (Debian packages, only when missing)
#   - Jaeger v2 (pinned in stack/jaeger/go.mod, built from the Go module proxy)
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
export UV_PYTHON_DOWNLOADS=never   # only registries are reachable: use the machine's Python

step() {  # step NAME COMMAND...: run, print the duration, stop with the reason on failure
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  if ! "$@"; then
    echo "✗ ${name} failed" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  printf '  %-28s %6.1fs\n' "$name" "$(echo "$end - $start" | bc)"
}

ensure_uv() {
  if command -v uv >/dev/null 2>&1 && [ "$(uv --version | awk '{print $2}')" = "$UV_VERSION" ]; then
    return 0
  fi
  python3.11 -m pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}"
}

apt_install() {  # apt_install PKG...: install Debian packages, with one apt-get update
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ ! -f /tmp/.routeiq-apt-updated ]; then
    $sudo apt-get update -qq && touch /tmp/.routeiq-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_system_packages() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  command -v bc >/dev/null 2>&1 || missing+=(bc)
  # Headless Chromium renders the analytics dashboard in its browser test.
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "  installing Debian packages: ${missing[*]}"
    apt_install "${missing[@]}"
  fi
}

ensure_python_env() {
  uv sync --frozen --python python3.11 --quiet
}

command -v bc >/dev/null 2>&1 || apt_install bc
echo "bootstrap:"
step "uv ${UV_VERSION}" ensure_uv
step "debian packages" ensure_system_packages
step "python env (uv.lock)" ensure_python_env
step "deploy tools (kustomize)" bash stack/install-deploy-tools.sh
step "jaeger (stack/jaeger)" bash stack/install-jaeger.sh
