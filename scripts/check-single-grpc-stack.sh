#!/usr/bin/env bash
# Fails when the dependency tree holds more than one version of tonic or prost
# (two gRPC stacks mean incompatible generated types and double build time).
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(cargo tree --workspace --all-features -e normal,build --prefix none)
status=0
for crate in tonic prost; do
    versions=$(grep -E "^$crate v" <<<"$tree" | awk '{print $2}' | sort -u)
    if [ "$(wc -l <<<"$versions")" -ne 1 ]; then
        echo "more than one $crate in the tree: $(tr '\n' ' ' <<<"$versions")" >&2
        status=1
    else
        echo "one $crate: $versions"
    fi
done
exit $status
