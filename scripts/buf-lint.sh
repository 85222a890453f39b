#!/usr/bin/env bash
# Lints the protos with buf (from npm: @bufbuild/buf). Skipped with a notice
# when npm is not installed, so `just lint` works on machines without Node.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npx >/dev/null 2>&1; then
    echo "buf lint skipped: npx (Node.js) not found"
    exit 0
fi
npx --yes @bufbuild/buf@1 lint
