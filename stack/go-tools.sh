# Shared by the scripts that build pinned Go programs into stack/.build/bin (sourced, not run).

# go_built_version BINARY MODULE: the version of MODULE stamped into BINARY by `go build`
# (its `mod` line when MODULE is the main module, its `dep` line when built from a module
# that pins it as a tool), or nothing when BINARY is missing or not a Go binary.
go_built_version() {
  [ -x "$1" ] || return 0
  go version -m "$1" 2>/dev/null \
    | awk -v mod="$2" '($1 == "dep" || $1 == "mod") && $2 == mod {print $3}'
}
