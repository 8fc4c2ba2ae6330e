"""Bytes and nothing else: frames, headers, the RecordBatch v2 view, errors.

This package performs no I/O and imports nothing else of odradek's.
"""
