#!/usr/bin/env bash
# OpenSearch demo, offline: start a real local OpenSearch node (the 3.x line from
# `make opensearch-jars`), index tests/data/pdfs with the lexical (text-layer) encoder through
# standard rank_features documents, run the demo queries with rank_feature queries, stop the node.
# Usage: examples/demo_opensearch.sh [VENV_BIN] [LINE]
set -euo pipefail
BIN=${1:-.venv/bin}
LINE=${2:-3}
OUT=demo-out
mkdir -p "$OUT"
echo "== starting a local OpenSearch node (line $LINE) =="
"$BIN/python" -m vsplade_opensearch.testnode --nodes 1 --line "$LINE" --http-port 0 > "$OUT/opensearch-url" &
NODE=$!
trap 'kill -TERM $NODE 2>/dev/null; wait $NODE 2>/dev/null || true' EXIT
for _ in $(seq 600); do  # bounded: at most 5 minutes for the JVM to come up
  [ -s "$OUT/opensearch-url" ] && break
  kill -0 $NODE 2>/dev/null || { echo "the node did not start (see above)" >&2; exit 2; }
  sleep 0.5
done
URL=$(head -1 "$OUT/opensearch-url")
[ -n "$URL" ] || { echo "the node did not start within 5 minutes" >&2; exit 2; }
echo "node at $URL"
echo
echo "== indexing tests/data/pdfs with --model lexical --engine opensearch =="
set +e
"$BIN/vsplade" index tests/data/pdfs --model lexical --engine opensearch --url "$URL" --index demo-pages
rc=$?
set -e
[ $rc -le 1 ] || exit $rc  # 1 = some inputs failed (listed above), the rest indexed
echo
echo "== searching =="
"$BIN/vsplade" search "how do I install a package with apt" "stub code generation for COM interfaces" \
  "dpkg list installed packages" --engine opensearch --url "$URL" --index demo-pages -k 3 --explain
echo
echo "== stopping the node =="
