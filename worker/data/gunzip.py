"""A gzip reader that inflates at most what it is asked for, in large steps for speed.

gzip.GzipFile bounds its output too, but feeds zlib 8 KiB at a time and copies each piece; this
reads 1 MiB of compressed input per step and is faster than gzip.decompress on MNIST's 47 MB.
"""

import zlib
from typing import BinaryIO

_CHUNK = 1 << 20  # compressed bytes read per step
_GZIP = 31  # zlib wbits for a gzip member, header and CRC32 checked by zlib


class Gunzip:
    """Decompress concatenated gzip members from raw; truncation is an EOFError."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(_GZIP)
        self._pending = b""  # compressed input read but not yet inflated

    def readinto(self, view: memoryview) -> int:
        """Fill view as far as the stream goes; never inflates past len(view)."""
        done = 0
        while done < len(view):
            if self._z.eof:
                rest = self._z.unused_data or self._raw.read(_CHUNK)
                if not rest:
                    break  # the last member ended cleanly
                self._z, self._pending = zlib.decompressobj(_GZIP), rest
            data = self._pending or self._raw.read(_CHUNK)
            if not data:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
            out = self._z.decompress(data, len(view) - done)
            self._pending = self._z.unconsumed_tail
            view[done : done + len(out)] = out
            done += len(out)
        return done

    def read(self, size: int) -> bytes:
        """Up to size bytes."""
        buffer = bytearray(size)
        return bytes(buffer[: self.readinto(memoryview(buffer))])
