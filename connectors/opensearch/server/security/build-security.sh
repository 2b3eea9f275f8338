#!/usr/bin/env bash
# Lay out the security plugin for secured test nodes (`python -m vsplade_opensearch.testnode
# --security`) under ../jars/security-VERSION/plugins/opensearch-security, unzipped from Maven
# Central (org.opensearch.plugin:opensearch-security:VERSION.0, 43 MB, kept in ~/.m2). Its own
# plugins/ folder, not the neural layout's: a node loads every plugin under path.home/plugins,
# and the neural nodes must stay unsecured. The server jars, modules and launcher are the 2.19.1
# plugin line's (../plugins/build-plugins.sh runs first). Maven Central serves this plugin at
# 2.19.1.0 only among the project's plugin lines (3.5.0.0, 3.6.0.0 and 3.9.0.0 are refused).
# Run by ../build.sh (make opensearch-jars); skipped when .complete holds this script's hash.
set -euo pipefail
cd "$(dirname "$0")"
VERSION=2.19.1
dir=$(cd .. && pwd)/jars/security-$VERSION  # absolute: maven resolves paths against its pom's folder
hash=$(sha256sum < build-security.sh | cut -d' ' -f1)
if [ "$(cat "$dir/.complete" 2>/dev/null)" = "$hash" ]; then
  echo "opensearch $VERSION security plugin: up to date"
  exit 0
fi
echo "opensearch $VERSION security plugin: fetching (maven) and laying out $dir"
rm -rf "$dir"
mkdir -p "$dir/plugins"
# the plugin zip, unpacked with lib-pom.xml's pinned maven-dependency-plugin; maven's unpack
# marker lives under target/ of the pom's folder, so a folder of our own keeps it from skipping
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp ../plugins/lib-pom.xml "$work/pom.xml"
mvn -q -B -f "$work/pom.xml" dependency:unpack \
    -Dartifact="org.opensearch.plugin:opensearch-security:$VERSION.0:zip" -DoutputDirectory="$dir/plugins/opensearch-security"
test -f "$dir/plugins/opensearch-security/plugin-descriptor.properties"
echo "$hash" > "$dir/.complete"
