"""CRC-32C, the checksum of record batches, from the crc32c package's C extension.

The package's __init__ asks importlib.metadata for its own version, which imports the email
package and costs about 15 ms of every broker start-up; the extension module is loaded on its own
when it is where the package keeps it, else through the package as usual.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path


def _extension():
    spec = importlib.util.find_spec("crc32c")  # finds the package without running its __init__
    for directory in (spec.submodule_search_locations or []) if spec is not None else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(directory) / f"_crc32c{suffix}"
            if path.exists():
                extension = importlib.util.spec_from_file_location("crc32c._crc32c", path)
                module = importlib.util.module_from_spec(extension)
                extension.loader.exec_module(module)
                return module
    raise ImportError("crc32c._crc32c not found")


def _crc32c():
    try:
        return _extension().crc32c
    except Exception:  # noqa: BLE001 - any surprise: the package's own way
        import crc32c as package

        return package.crc32c


crc32c = _crc32c()
