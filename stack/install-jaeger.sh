#!/usr/bin/env bash
# Builds Jaeger (v2: one binary, an OpenTelemetry Collector distribution with Jaeger's storage
# and query) for the local stack, idempotently: a second run only checks the version stamped
# in the binary (well under a second).
#   - jaeger (pinned), built from the Go module proxy into stack/.build/bin/jaeger. The pin is
#     stack/jaeger/go.mod's `tool` directive with its go.sum, so the build is reproducible;
#     upgrading means `go get -tool github.com/jaegertracing/jaeger/cmd/jaeger@<tag>` there
#     and changing JAEGER_VERSION below.
set -euo pipefail
cd "$(dirname "$0")/.."
source stack/go-tools.sh

JAEGER_VERSION="v1.75.0"   # the Go module's tag; the binary is Jaeger v2
JAEGER_MODULE="github.com/jaegertracing/jaeger"
BIN_DIR="stack/.build/bin"
JAEGER="${BIN_DIR}/jaeger"

ensure_jaeger() {
  if ! command -v go >/dev/null 2>&1; then
    if [ -x "$JAEGER" ]; then
      echo "  jaeger                present (go not found; version not checked)"
      return 0
    fi
    echo "✗ jaeger: Go is needed to build Jaeger ${JAEGER_VERSION} (stack/jaeger/go.mod)" >&2
    return 1
  fi
  local have
  have="$(go_built_version "$JAEGER" "$JAEGER_MODULE")"
  if [ "$have" = "$JAEGER_VERSION" ]; then
    echo "  jaeger ${JAEGER_VERSION}        present   ${JAEGER}"
    return 0
  fi
  echo "  jaeger ${JAEGER_VERSION}        building from the Go module proxy (minutes on a cold Go cache)"
  mkdir -p "$BIN_DIR"
  # GOTOOLCHAIN=local: build with the machine's Go rather than fetching another toolchain.
  # -mod=mod: the module has no vendor folder; go.sum still verifies every download.
  (cd stack/jaeger \
    && GOTOOLCHAIN=local GOFLAGS=-mod=mod \
      go build -o "../../${JAEGER}.tmp" "${JAEGER_MODULE}/cmd/jaeger")
  # Renamed only once complete, so an interrupted build never leaves a half-written binary.
  mv "${JAEGER}.tmp" "$JAEGER"
  have="$(go_built_version "$JAEGER" "$JAEGER_MODULE")"
  if [ "$have" != "$JAEGER_VERSION" ]; then
    echo "✗ jaeger: built binary reports '${have}', expected ${JAEGER_VERSION}" >&2
    return 1
  fi
  echo "  jaeger ${JAEGER_VERSION}        installed ${JAEGER}"
}

echo "tracing:"
ensure_jaeger
