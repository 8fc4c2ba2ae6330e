#!/usr/bin/env bash
# Print the first Python interpreter >= 3.11 found on PATH, or fail with one clear line.
# Honours $PYTHON when it is set and new enough.
set -euo pipefail

for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        command -v "$candidate"
        exit 0
    fi
done
echo "odradek needs Python 3.11 or newer; none found on PATH (tried: ${PYTHON:-} python3 python3.13 python3.12 python3.11 python)" >&2
exit 1
