#!/usr/bin/env bash
# Create the virtualenv at $1 (default .venv) with a Python >= 3.11 and a working pip.
# Some distributions ship python3 without ensurepip (Debian's python3-venv); then the venv is
# created without pip and pip is installed into it by the system pip (`pip --python`).
set -euo pipefail

venv=${1:-.venv}
python=$("$(dirname "$0")/find-python.sh")

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    exit 0
fi
rm -rf "$venv"
trap 'rm -rf "$venv"' ERR

if ! "$python" -m venv "$venv" 2>/dev/null; then
    echo "note: '$python -m venv' failed (no ensurepip?); creating the venv without pip and installing pip into it" >&2
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
    "$python" -m pip --python "$venv/bin/python" install --quiet pip
fi
"$venv/bin/python" -m pip --version >/dev/null
