#!/usr/bin/env bash
# Submits this example to a running `weft serve` with curl, as a client on
# another machine would: uploads each component by digest, names the
# components by those digests in the workflow (a served workflow names no
# host paths), and waits up to 60 s for the output contract, printed on
# stdout.
#
#   examples/onex-pipeline/submit-over-http.sh http://127.0.0.1:8080 "$TOKEN"
#
# The server must have been started with a tenant root that holds this
# tenant's `data/` and `out/` directories, and a policy that allows them
# (see the README's "Serve it").
set -euo pipefail
url=${1:?usage: $0 URL TOKEN}
token=${2:?usage: $0 URL TOKEN}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

workflow=$(cat "$here/workflow.yaml")
for name in validate_order file_records price_cart ledger; do
    file="$root/plugins/dist/$name.wasm"
    digest="sha256:$(sha256sum "$file" | cut -d' ' -f1)"
    curl -sS --fail-with-body -X PUT -H "Authorization: Bearer $token" \
        --data-binary "@$file" "$url/v1/components/$digest" >/dev/null
    workflow=${workflow//"../../plugins/dist/$name.wasm"/$digest}
done
body=$(WORKFLOW="$workflow" python3 -c '
import json, os, sys
print(json.dumps({"definition": os.environ["WORKFLOW"], "input": json.load(open(sys.argv[1]))}))
' "$here/input.json")
curl -sS --fail-with-body -H "Authorization: Bearer $token" -H "Content-Type: application/json" \
    -d "$body" "$url/v1/runs?wait=60"
echo
