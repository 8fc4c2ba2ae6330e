#!/usr/bin/env bash
# Fetch and build the reference clients of the compatibility suite (tests/compat) into a
# git-ignored cache, reusing what is already there.
#
#   scripts/compat-fetch-tools.sh [java] [go] [node] [kcat]     (no argument: all of them)
#
# Cache: $ODRADEK_COMPAT_CACHE, default <repo>/.cache/compat. Each part is rebuilt only when its
# inputs change (a stamp file holds the sha256 of the inputs):
#   java  Maven Central: the jars named by tests/compat/java/pom.xml -> java/lib/*.jar, then
#         javac tests/compat/java/src/*.java -> java/classes    (maven repo: m2/)
#   go    Go module proxy: franz-go, build tests/compat/go -> go/bin/franzgo-compat
#         (GOPATH, GOMODCACHE and GOCACHE all inside the cache)
#   node  npm registry: `npm ci` of tests/compat/node/package-lock.json -> node/node_modules
#   kcat  only checks that kcat is installed (Debian package kcat, installed by
#         scripts/ensure-system-packages.sh, which `make test` runs)
# Tools' own output goes to stderr; stdout has one line "ok <part> <path>" per part done.
# Exit status is non-zero when a part failed; tests/compat/conftest.py then skips that client's tests with this output as the reason.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
compat="$repo/tests/compat"
cache=${ODRADEK_COMPAT_CACHE:-$repo/.cache/compat}
mkdir -p "$cache"

# One fetch at a time per cache (parallel pytest workers, two checkouts sharing a cache).
exec 9>"$cache/.lock"
flock 9

inputs_hash() {
    cat "$@" | sha256sum | cut -d' ' -f1
}

up_to_date() { # stamp-file hash
    [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]
}

need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "compat-fetch-tools: '$1' is not installed (run scripts/ensure-system-packages.sh)" >&2
        exit 2
    fi
}

fetch_java() {
    need mvn
    need javac
    local out="$cache/java" hash
    hash=$(inputs_hash "$compat/java/pom.xml" "$compat"/java/src/*.java)
    if ! up_to_date "$out/.stamp" "$hash"; then
        rm -rf "$out"
        mkdir -p "$out"
        mvn -q -B -Dstyle.color=never -f "$compat/java/pom.xml" -Dmaven.repo.local="$cache/m2" \
            dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$out/lib" >&2
        javac -nowarn -d "$out/classes" -cp "$out/lib/*" "$compat"/java/src/*.java >&2
        echo "$hash" >"$out/.stamp"
    fi
    echo "ok java $out"
}

fetch_go() {
    need go
    local out="$cache/go" hash
    hash=$(inputs_hash "$compat/go/go.mod" "$compat/go/go.sum" "$compat"/go/*.go)
    if ! up_to_date "$out/.stamp" "$hash"; then
        rm -rf "$out/bin"
        mkdir -p "$out/bin"
        (
            cd "$compat/go"
            export GOPATH="$out/path" GOMODCACHE="$out/mod" GOCACHE="$out/build"
            export GOFLAGS="-mod=mod -modcacherw"
            go build -o "$out/bin/franzgo-compat" . >&2
        )
        echo "$hash" >"$out/.stamp"
    fi
    echo "ok go $out/bin/franzgo-compat"
}

fetch_node() {
    need node
    need npm
    local out="$cache/node" hash
    hash=$(inputs_hash "$compat/node/package.json" "$compat/node/package-lock.json")
    if ! up_to_date "$out/.stamp" "$hash"; then
        rm -rf "$out"
        mkdir -p "$out"
        cp "$compat/node/package.json" "$compat/node/package-lock.json" "$out/"
        (cd "$out" && npm ci --no-audit --no-fund --loglevel=error --silent --cache "$cache/npm-cache" >&2)
        echo "$hash" >"$out/.stamp"
    fi
    echo "ok node $out/node_modules"
}

fetch_kcat() {
    need kcat
    echo "ok kcat $(command -v kcat)"
}

parts=("$@")
if [ ${#parts[@]} -eq 0 ]; then
    parts=(java go node kcat)
fi
for part in "${parts[@]}"; do
    case "$part" in
        java | go | node | kcat) "fetch_$part" ;;
        *)
            echo "compat-fetch-tools: unknown part '$part' (expected java, go, node or kcat)" >&2
            exit 2
            ;;
    esac
done
