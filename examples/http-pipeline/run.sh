#!/usr/bin/env bash
# Runs examples/http-pipeline/workflow.yaml against its own server: starts server.py on a free
# port of 127.0.0.1 (requiring the bearer token below), runs the workflow with that base URL and
# the token as the secret API_TOKEN, then stops the server. Extra arguments go to `weft run`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
token="example-token"
coproc SERVER { exec python3 "$here/server.py" --token "$token"; }
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
read -r line <&"${SERVER[0]}"
port="${line##* }"
input="$(mktemp)"
python3 - "$here/input.json" "$port" > "$input" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["context"]["base_url"] = f"http://127.0.0.1:{sys.argv[2]}"
print(json.dumps(d))
PY
WEFT_SECRET_API_TOKEN="$token" cargo run -q --manifest-path "$here/../../Cargo.toml" -- \
    run "$here/workflow.yaml" --input "$input" "$@"
