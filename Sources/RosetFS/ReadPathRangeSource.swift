// Where the read path gets bytes from: one object version, read by byte range. The filesystem
// layer conforms `SignedURLReader` (an HTTP ranged GET on a signed URL) to it; tests use an
// in-memory fake. Implementations must be safe to call from several threads at once: the read
// path issues parallel range requests for one object.

public protocol RangeSource: AnyObject, Sendable {
    /// Reads bytes [offset, offset + buffer.count) of the object (fewer only at its end); throws on failure.
    func read(offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}
