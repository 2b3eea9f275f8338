#!/usr/bin/env bash
# Offline demo: index the test PDFs with the lexical (text-layer) encoder into the default
# engine (Lucene when vsplade-lucene is installed), then search. Usage: examples/demo.sh [VENV_BIN]
set -euo pipefail
BIN=${1:-.venv/bin}
OUT=demo-out
INDEX=$OUT/index
mkdir -p "$OUT"
echo "== indexing tests/data/pdfs with --model lexical (re-runs resume) =="
set +e
"$BIN/vsplade" index tests/data/pdfs --model lexical --index "$INDEX"
rc=$?
set -e
# exit code 1 = some inputs failed (listed above) while the rest were indexed
[ $rc -le 1 ] || exit $rc
echo
echo "== searching =="
"$BIN/vsplade" search "how do I install a package with apt" "stub code generation for COM interfaces" \
  "dpkg list installed packages" --index "$INDEX" -k 3 --explain
