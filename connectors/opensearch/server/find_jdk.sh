# Sourced by build.sh and plugins/build-plugins.sh.
# smallest JDK (with javac) whose major version is >= $1: JAVA_HOME first, then /usr/lib/jvm
find_jdk() {
  local min=$1 best="" best_major=999 home major
  for home in ${JAVA_HOME:-} /usr/lib/jvm/*; do
    [ -x "$home/bin/javac" ] && [ -f "$home/release" ] || continue
    major=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$home/release")
    [ -n "$major" ] && [ "$major" -ge "$min" ] && [ "$major" -lt "$best_major" ] || continue
    best=$home best_major=$major
  done
  [ -n "$best" ] || { echo "build.sh: no JDK >= $min with javac (JAVA_HOME or /usr/lib/jvm)" >&2; return 1; }
  echo "$best"
}
