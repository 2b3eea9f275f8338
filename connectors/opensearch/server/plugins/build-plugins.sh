#!/usr/bin/env bash
# Lay out the plugin nodes of plugins.tsv (see testnode --plugins) under ../jars/plugins-VERSION/:
#   lib/       the server jars and log4j-core (lib-pom.xml): the JVM classpath
#   modules/   transport-netty4, mapper-extras, analysis-common, lang-painless (+ transport-grpc
#              on 3.x), one folder per module with a plugin-descriptor.properties (modules.tsv)
#   plugins/   job-scheduler, ml-commons, k-NN, neural-search, unzipped from Maven Central
#   launcher/  VspladeTestNode + this folder's LineNode (no classpath plugins)
# Why modules/ instead of the classpath: see lib-pom.xml. The ml-commons zip carries a 300 MB
# onnxruntime_gpu jar (ONNX models on a GPU), left out: SPARSE_TOKENIZE models and everything
# else the tests use never load it. Maven keeps the zips in ~/.m2 (about 410 MB for 3.6.0, 380
# MB for 2.19.1, fetched once); a line whose .complete matches its sources is skipped.
# Run by ../build.sh (make opensearch-jars). VSPLADE_OPENSEARCH_PLUGIN_LINES="3" limits the lines.
set -euo pipefail
cd "$(dirname "$0")"
. ../find_jdk.sh
OUT=../jars
ZIPS="opensearch-job-scheduler opensearch-ml-plugin opensearch-knn neural-search"

source_hash() {  # what the layout and launcher of plugins.tsv row "$*" come from
  { echo "$*"; cat lib-pom.xml module-pom.xml modules.tsv build-plugins.sh LineNode.java \
      ../launcher/VspladeTestNode.java; } | sha256sum | cut -d' ' -f1
}

descriptor() {  # name classname version java: a module's plugin-descriptor.properties
  cat <<DESC
# written by vsplade build-plugins.sh: Maven serves the module jar, not the distribution's folder
description=$1 module (from Maven Central)
version=$3
name=$1
classname=$2
java.version=$4
opensearch.version=$3
extended.plugins=
has.native.controller=false
DESC
}

want=${VSPLADE_OPENSEARCH_PLUGIN_LINES:-}
grep -v '^#' plugins.tsv | while read -r line version log4j java; do
  [ -n "$line" ] || continue
  if [ -n "$want" ] && [[ " $want " != *" $line "* ]]; then continue; fi
  dir="$OUT/plugins-$version"
  hash=$(source_hash "$line" "$version" "$log4j" "$java")
  if [ "$(cat "$dir/.complete" 2>/dev/null)" = "$hash" ]; then
    echo "opensearch $version + plugins: up to date"
    continue
  fi
  echo "opensearch $version + plugins: fetching (maven) and laying out $dir"
  rm -rf "$dir"
  # maven's unpack skips an artifact whose marker (target/) says it was unpacked before, even
  # into a folder that is gone: without this a rebuilt layout has no plugins
  rm -rf target
  mkdir -p "$dir/modules" "$dir/plugins"
  mvn -q -B -f lib-pom.xml dependency:copy-dependencies -Dopensearch.version="$version" \
      -Dlog4j.version="$log4j" -DoutputDirectory="$dir/lib"
  grep -v '^#' modules.tsv | while read -r mline folder artifact class; do
    [ "$mline" = "$line" ] || continue
    mvn -q -B -f module-pom.xml dependency:copy-dependencies -Dopensearch.version="$version" \
        -Dmodule.artifact="$artifact" -DoutputDirectory="$dir/modules/$folder"
    for jar in "$dir/lib"/*.jar; do rm -f "$dir/modules/$folder/$(basename "$jar")"; done
    descriptor "$folder" "$class" "$version" "$java" > "$dir/modules/$folder/plugin-descriptor.properties"
  done
  for zip in $ZIPS; do
    tmp="$dir/plugins/.$zip"
    mvn -q -B -f lib-pom.xml dependency:unpack -Dartifact="org.opensearch.plugin:$zip:$version.0:zip" \
        -Dmdep.unpack.excludes='onnxruntime_gpu-*.jar' -DoutputDirectory="$tmp"
    name=$(sed -n 's/^name=//p' "$tmp/plugin-descriptor.properties")
    mv "$tmp" "$dir/plugins/$name"
  done
  jdk=$(find_jdk "$java")
  "$jdk/bin/javac" -nowarn --release "$java" -d "$dir/launcher" -cp "$dir/lib/*" \
      ../launcher/VspladeTestNode.java LineNode.java
  echo "$hash" > "$dir/.complete"
done
