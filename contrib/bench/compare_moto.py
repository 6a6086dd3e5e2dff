#!/usr/bin/env python3
"""moto_server with ranged GETs that cost O(range), for the comparison benchmark (compare.py).

Why: moto 5.x answers `GET` with `Range: bytes=a-b` by reading the WHOLE object from its buffer
and slicing it (S3Response.get_object returns key.value; _handle_range_header slices it). On a
1 GiB object every 4 KiB random read or read-ahead block then costs a 1 GiB read, which no real
object store does, and which would measure moto rather than the clients. This wrapper changes only
that: for a single `bytes=a-b` / `bytes=a-` range, get_object hands _handle_range_header a view
whose slice reads just those bytes from the key's buffer (under the key's lock). Status codes,
headers, 416 handling and every other request stay moto's own. It also computes ETags under the
key's lock (see below), a moto race that corrupts ETags under concurrent requests. Same arguments
as moto_server.
"""
import re
import sys
import threading

from moto.s3 import models, responses
from moto import server

_wanted = threading.local()


class RangeView:
    """Looks like the object's bytes to _handle_range_header (len and one slice), reads only the slice."""

    def __init__(self, key):
        self.key, self.size = key, key.size

    def __len__(self):
        return self.size

    def __getitem__(self, s):
        start, stop, _ = s.indices(self.size)
        with self.key.lock:
            self.key._value_buffer.seek(start)
            return self.key._value_buffer.read(max(0, stop - start))


_value = models.FakeKey.value


def _value_get(key):
    if getattr(_wanted, "on", False):
        _wanted.on = False
        return RangeView(key)
    return _value.fget(key)


models.FakeKey.value = property(_value_get, _value.fset)

# moto computes an object's ETag lazily (md5 over its buffer: seek(0) + reads) without the key's
# lock; two requests doing so at once (a HEAD polled during a PUT's own answer) interleave their
# seeks and cache a wrong ETag for good, and rclone then deletes the object as "corrupted on
# transfer". Computing it under the key's lock makes it deterministic.
_etag = models.FakeKey.etag


def _etag_get(key):
    with key.lock:
        return _etag.fget(key)


models.FakeKey.etag = property(_etag_get)

_get_object = responses.S3Response.get_object


def get_object(self):
    rng = self.headers.get("range") or self.headers.get("Range") or ""
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
    # Only ranges that _handle_range_header slices (a <= b); anything else gets moto's own path.
    _wanted.on = bool(m) and (not m.group(2) or int(m.group(1)) <= int(m.group(2))) \
        and not self._get_int_param("partNumber")
    try:
        return _get_object(self)
    finally:
        _wanted.on = False


responses.S3Response.get_object = get_object

if __name__ == "__main__":
    server.main(sys.argv[1:])
