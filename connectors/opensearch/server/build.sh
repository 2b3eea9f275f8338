#!/usr/bin/env bash
# Fetch the OpenSearch server jars of each line in lines.tsv from Maven Central (pom.xml) into
# jars/VERSION/ and compile the launcher against them into jars/launcher-VERSION/.
# Run by `make opensearch-jars`; needs mvn and a JDK (javac) per line: 17+ for 2.x, 21+ for 3.x.
# vsplade_opensearch.testnode refuses a launcher whose SOURCE_HASH no longer matches the sources.
set -euo pipefail
cd "$(dirname "$0")"
JARS=jars
mkdir -p "$JARS"

. ./find_jdk.sh

source_hash() {  # what the compiled launcher of line $1 depends on
  cat pom.xml lines.tsv launcher/VspladeTestNode.java "launcher/v$1/LineNode.java" | sha256sum | cut -d' ' -f1
}

grep -v '^#' lines.tsv | while read -r line version log4j java; do
  [ -n "$line" ] || continue
  hash=$(source_hash "$line")
  jars_hash=$(cat pom.xml lines.tsv | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$JARS/$version/.complete" 2>/dev/null)" != "$jars_hash" ]; then
    echo "opensearch $version: fetching the server jars (maven)"
    rm -rf "$JARS/$version"
    mvn -q -B dependency:copy-dependencies -Dopensearch.version="$version" -Dlog4j.version="$log4j" \
        -DoutputDirectory="$JARS/$version"
    echo "$jars_hash" > "$JARS/$version/.complete"
  fi
  if [ "$(cat "$JARS/launcher-$version/SOURCE_HASH" 2>/dev/null)" = "$hash" ]; then
    echo "opensearch $version: up to date"
    continue
  fi
  echo "opensearch $version: compiling the launcher"
  rm -rf "$JARS/launcher-$version"
  jdk=$(find_jdk "$java")
  "$jdk/bin/javac" -nowarn --release "$java" -d "$JARS/launcher-$version" -cp "$JARS/$version/*" \
      launcher/VspladeTestNode.java "launcher/v$line/LineNode.java"
  echo "$hash" > "$JARS/launcher-$version/SOURCE_HASH"
done

# the plugin nodes (testnode --plugins): their own server versions, modules and plugin zips
bash plugins/build-plugins.sh

# the secured test node (testnode --security): the security plugin beside the 2.19.1 plugin line
bash security/build-security.sh
