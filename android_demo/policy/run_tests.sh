#!/usr/bin/env bash
# Compile the pure-Kotlin policy module and its JUnit 5 tests with plain kotlinc (no Gradle, no
# Android SDK) and run them against tests/vectors/*.json, the tokenizer vectors in tests/vectors/tokenizers/
# (each kind's count printed, e.g. "bpe: 375/375"), the bundle contract's vectors (tests/vectors/bundle.json
# on copies of tests/vectors/bundle/, each list's count printed, e.g. "bundle manifest_cases: 7/7") and the
# shipped bundle. Then compile the
# app (android_demo/app) and the library's ExecuTorch file against signature stand-ins of the Android
# SDK and executorch-android (android_demo/app/standins): "android app: N sources compile against the
# stand-ins", or the run fails.
#
#   bash android_demo/policy/run_tests.sh        # from any folder; ends "kotlin policy tests: N passed, N failed"
#
# Tools: kotlinc from npm (kotlin-compiler@2.4) in ${EDGE_VARIATOR_TOOLS:-~/.cache/edge-variator/tools}/kotlin,
# installed on first use and reused after; JUnit 5 from Debian's junit5 package in /usr/share/java.
# EDGE_VARIATOR_ROOT, EDGE_VARIATOR_POLICY_VECTORS, EDGE_VARIATOR_EXIT_VECTORS and EDGE_VARIATOR_BUNDLE_VECTORS
# point the tests elsewhere.
set -euo pipefail

now() { date +%s.%N; }
seconds_since() { awk -v start="$1" -v end="$(now)" 'BEGIN { printf "%.1f", end - start }'; }

setup_began=$(now)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export EDGE_VARIATOR_ROOT="${EDGE_VARIATOR_ROOT:-$(cd "$here/../.." && pwd)}"
tools="${EDGE_VARIATOR_TOOLS:-$HOME/.cache/edge-variator/tools}/kotlin"
compiler="$tools/node_modules/kotlin-compiler"
java_lib=/usr/share/java

if ! command -v java >/dev/null; then
    echo "run_tests.sh: installing a JDK (apt-get install default-jdk-headless)" >&2
    apt-get install -y default-jdk-headless >/dev/null || { apt-get update >/dev/null && apt-get install -y default-jdk-headless >/dev/null; }
fi
if [[ ! -x "$compiler/bin/kotlinc" ]]; then
    command -v npm >/dev/null || { echo "run_tests.sh: npm is needed to install the Kotlin compiler" >&2; exit 1; }
    echo "run_tests.sh: installing kotlin-compiler@2.4 into $tools" >&2
    mkdir -p "$tools"
    (cd "$tools" && npm install --no-audit --no-fund --loglevel=error kotlin-compiler@2.4 >&2)
fi
if [[ ! -f "$java_lib/junit-platform-console-standalone.jar" ]]; then
    echo "run_tests.sh: installing JUnit 5 (apt-get install junit5)" >&2
    apt-get install -y junit5 >/dev/null || { apt-get update >/dev/null && apt-get install -y junit5 >/dev/null; }
fi
echo "setup: $(seconds_since "$setup_began") s (kotlinc $(cat "$compiler/build.txt"))"

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
compile_began=$(now)
junit_api="$java_lib/junit-jupiter-api.jar:$java_lib/opentest4j.jar:$java_lib/apiguardian-api.jar:$java_lib/junit-platform-commons.jar"
# Classes in a folder, not a jar: kotlinc's jars have no folder entries, so package selection finds nothing in them.
"$compiler/bin/kotlinc" -jvm-target 17 -nowarn -no-reflect -classpath "$junit_api" \
    -d "$build/classes" "$here/src/main/kotlin" "$here/src/test/kotlin"
echo "compile: $(seconds_since "$compile_began") s"

# The app and src/executorch/kotlin on the classes above, against stand-ins (Java for the SDK, as
# android.jar is, so Kotlin sees the same getters-as-properties and nullability; Kotlin for
# executorch-android 1.4.0) that no Gradle source set holds: kotlinc reads the .java files as
# declarations only. Nothing of the app runs here; a change that stops it compiling fails the run.
app="$(cd "$here/../app" && pwd)"
app_sources=("$app/src/main/kotlin" "$here/src/executorch/kotlin")
app_count=$(find "${app_sources[@]}" -name '*.kt' | wc -l)
app_began=$(now)
set +e
"$compiler/bin/kotlinc" -jvm-target 17 -nowarn -no-reflect -classpath "$build/classes" \
    -d "$build/app-classes" "${app_sources[@]}" "$app/standins"
app_status=$?
set -e
if [[ $app_status == 0 ]]; then
    echo "android app: $app_count sources compile against the stand-ins ($(seconds_since "$app_began") s)"
else
    echo "android app: $app_count sources do NOT compile against the stand-ins (kotlinc's errors above)"
fi

tests_began=$(now)
classpath="$build/classes:$compiler/lib/kotlin-stdlib.jar"
set +e
java -jar "$java_lib/junit-platform-console-standalone.jar" \
    --disable-banner --disable-ansi-colors --details=summary --fail-if-no-tests \
    --class-path "$classpath" --select-package ai.edgevariator.policy | tee "$build/launcher.log"
launcher_status=${PIPESTATUS[0]}
set -e
echo "tests: $(seconds_since "$tests_began") s"

passed=$(sed -n 's/^\[ *\([0-9][0-9]*\) tests successful *\]$/\1/p' "$build/launcher.log")
failed=$(sed -n 's/^\[ *\([0-9][0-9]*\) tests failed *\]$/\1/p' "$build/launcher.log")
if [[ -z "$passed" || -z "$failed" ]]; then
    echo "run_tests.sh: could not read the launcher's summary (exit status $launcher_status)" >&2
    echo "kotlin policy tests: ${passed:-0} passed, ${failed:-1} failed"
    exit 1
fi
echo "kotlin policy tests: $passed passed, $failed failed"
if [[ "$failed" != 0 || "$passed" == 0 || "$launcher_status" != 0 || "$app_status" != 0 ]]; then
    exit 1
fi
