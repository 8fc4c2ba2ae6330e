#!/usr/bin/env bash
# Install the system packages the test suites need, only when a command they provide is missing.
# A no-op when every command is present (the common case, and always so today).
#
# Each requirement is "command:apt-package". Later suites add e.g. "kcat:kcat",
# "java:default-jre-headless", "zkServer.sh:zookeeper".
set -euo pipefail

REQUIREMENTS=(
    # tests/compat: kcat, and the toolchains that build the Java, Go and Node reference clients
    "kcat:kcat"
    "java:default-jdk-headless"
    "javac:default-jdk-headless"
    "mvn:maven"
    "go:golang-go"
    "node:nodejs"
    "npm:npm"
    "flock:util-linux"
    # tests/cluster: network partitions between brokers in network namespaces
    "ip:iproute2"
    # tests/integration/test_console.py: the web console in headless Chromium (Playwright drives it)
    "chromium:chromium"
)

missing=()
for requirement in "${REQUIREMENTS[@]+"${REQUIREMENTS[@]}"}"; do
    command_name=${requirement%%:*}
    package=${requirement#*:}
    if ! command -v "$command_name" >/dev/null 2>&1 && [[ " ${missing[*]-} " != *" $package "* ]]; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing system packages: ${missing[*]}; install them (no apt-get on this machine)" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "missing system packages: ${missing[*]}; run as root or install sudo" >&2
        exit 1
    fi
    sudo=(sudo)
fi
echo "installing system packages: ${missing[*]}" >&2
"${sudo[@]+"${sudo[@]}"}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]+"${sudo[@]}"}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
