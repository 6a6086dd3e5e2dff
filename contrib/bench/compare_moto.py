#!/usr/bin/env python3
"""moto_server without four of its costs that no real object store has, for compare.py.

- Ranged GETs cost O(range). moto 5.x answers `GET` with `Range: bytes=a-b` by reading the WHOLE
  object from its buffer and slicing it (S3Response.get_object returns key.value;
  _handle_range_header slices it). On a 1 GiB object every 4 KiB random read or read-ahead block
  then costs a 1 GiB read, which would measure moto rather than the clients. Here, for a single
  `bytes=a-b` / `bytes=a-` range, get_object hands _handle_range_header a view whose slice reads
  just those bytes from the key's buffer (under the key's lock).
- Whole-object GETs stream. moto reads the whole object into one fresh bytes object before it
  sends a byte (for a 1 GiB object, 1 GiB of new memory faulted in per GET, and twice that for a
  multipart object). That cost fell on the benchmark's limit, one curl GET of the whole object:
  in one measured run it swung between 340 and 1,300 MiB/s, and 1,300-3,600 streamed. Here the
  body is sent in 8 MiB slices of the same view, each read under the key's lock, as a real store
  streams from disk.
- ETags are computed under the key's lock (see below): a moto race that corrupts ETags under
  concurrent requests.
- CompleteMultipartUpload copies nothing. moto makes five in-memory copies of the whole object
  (3.5 s on a 512 MiB object, longer than uploading its parts); a real store completes without
  copying. Here the new key reads its parts' buffers through one file-like view. The same checks,
  ETag and checksum as moto's (the checksum in one pass over the parts).

Status codes, headers, 416 handling and every other request stay moto's own. Same arguments as
moto_server; compare.py --stock-moto runs the unmodified one.
"""
import binascii
import base64
import codecs
import re
import sys
import tempfile
import threading

from moto.s3 import exceptions, models, responses, utils
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

    def slices(self, length):
        """The whole object as consecutive slices of at most `length` bytes (a streamed body)."""
        for start in range(0, self.size, length):
            yield self[start:start + length]


_value = models.FakeKey.value


def _value_get(key):
    if getattr(_wanted, "on", False):
        _wanted.on = False
        return RangeView(key)
    return _value.fget(key)


class PartsBuffer:
    """A completed multipart object as a read-only file over its parts' buffers, in order, as a
    real store keeps it: completing copies nothing. It owns those buffers (moto disposes of the
    parts once the upload is complete, so `complete` hands the parts empty ones). Like any key
    buffer it is only used under its key's lock."""

    def __init__(self, buffers):
        self.buffers = buffers  # [(file, size)]
        self.size = sum(size for _, size in buffers)
        self.position = 0

    def __len__(self):
        return self.size

    def seek(self, offset, whence=0):
        self.position = {0: 0, 1: self.position, 2: self.size}[whence] + offset
        return self.position

    def tell(self):
        return self.position

    def read(self, n=-1):
        end = self.size if n is None or n < 0 else min(self.size, self.position + n)
        out, start = bytearray(), 0
        for buffer, size in self.buffers:
            stop = start + size
            if self.position < stop and start < end:
                buffer.seek(self.position - start)
                out += buffer.read(min(end, stop) - self.position)
                self.position = min(end, stop)
            start = stop
        return bytes(out)

    def close(self):
        for buffer, _ in self.buffers:
            buffer.close()


def _value_set(key, new_value):
    if isinstance(new_value, PartsBuffer):
        key._value_buffer.close()
        key._value_buffer = new_value
        key.contentsize = new_value.size
        return
    if isinstance(key._value_buffer, PartsBuffer):  # overwritten: back to a file of its own
        key._value_buffer = tempfile.SpooledTemporaryFile(key._max_buffer_size)
    _value.fset(key, new_value)


models.FakeKey.value = property(_value_get, _value_set)

_complete = models.FakeMultipart.complete
_CHUNK = 8 << 20


def complete(self, body):
    """moto's FakeMultipart.complete (same checks, same ETag, same checksum), streamed.

    Streams only the default checksum that moto computes without awscrt: a CRC32 of the whole
    object (moto's CRC64NVME falls back to it); any other checksum request goes to moto's own."""
    body = list(body)
    algorithm = self.metadata.get("x-amz-checksum-algorithm")
    kind = self.metadata.get("x-amz-checksum-type")
    if utils.HAS_CRT or algorithm not in (None, "CRC64NVME", "CRC32") or kind not in (None, "FULL_OBJECT"):
        return _complete(self, iter(body))
    decode_hex = codecs.getdecoder("hex_codec")
    md5s, parts, last = bytearray(), [], None
    for number, etag in body:
        part = self.parts.get(number)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise exceptions.InvalidPart()
        if last is not None and last.contentsize < models.S3_UPLOAD_PART_MIN_SIZE:
            raise exceptions.EntityTooSmall()
        md5s.extend(decode_hex(part.etag.replace('"', ""))[0])
        parts.append(part)
        last = part
    if not parts:
        raise exceptions.MalformedXML()
    crc, buffers, taken = 0, [], {}
    for part in parts:
        if id(part) not in taken:  # a part listed twice is read twice, as moto joins it twice
            with part.lock:
                taken[id(part)], part._value_buffer = part._value_buffer, tempfile.SpooledTemporaryFile(1)
        buffer = taken[id(part)]
        buffers.append((buffer, part.contentsize))
        buffer.seek(0)
        while chunk := buffer.read(_CHUNK):
            crc = binascii.crc32(chunk, crc)
    full_etag = models.md5_hash()
    full_etag.update(bytes(md5s))
    checksum = base64.b64encode(crc.to_bytes(4, "big")).decode()
    return PartsBuffer(buffers), f"{full_etag.hexdigest()}-{len(parts)}", ("FULL_OBJECT", checksum, 1)


models.FakeMultipart.complete = complete

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
    part = self._get_int_param("partNumber")
    # Only ranges that _handle_range_header slices (a <= b); anything else gets moto's own path.
    ranged = bool(m) and (not m.group(2) or int(m.group(1)) <= int(m.group(2))) and not part
    whole = not rng.strip() and not part
    _wanted.on = ranged or whole
    try:
        result = _get_object(self)
    finally:
        _wanted.on = False
    if whole and isinstance(result, tuple) and len(result) == 3 and isinstance(result[2], RangeView):
        # Headers (content-length included) are moto's; only the body is streamed.
        status, headers, view = result
        return status, headers, view.slices(_CHUNK)
    return result


responses.S3Response.get_object = get_object

if __name__ == "__main__":
    server.main(sys.argv[1:])
