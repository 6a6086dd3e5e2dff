// Where the read path gets bytes from: one object version, read by byte range. The filesystem
// layer conforms `SignedURLReader` (an HTTP ranged GET on a signed URL) to it; tests use an
// in-memory fake. Implementations must be safe to call from several threads at once: the read
// path issues parallel range requests for one object.

public protocol RangeSource: AnyObject, Sendable {
    /// Reads bytes [offset, offset + buffer.count) of the object (fewer only at its end); throws on failure.
    func read(offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// A source that can also write a byte range straight into pipes, so that a sequential reader's
/// bytes never pass through this process's memory (PipeStream).
public protocol PipeRangeSource: RangeSource {
    /// Whether `fillPipes` can work at all for this object (a plain-http URL, say).
    var canFillPipes: Bool { get }
    /// Writes bytes [offset, offset + Σ counts) into the pipes' write ends in order, calling
    /// `filled(i)` once pipe i holds its count; `filled` returning false stops early without an
    /// error. Returns false, having written nothing, when it cannot; throws on a failed transfer.
    func fillPipes(offset: Int64, pipes: [(fd: Int32, count: Int)], filled: (Int) -> Bool) throws -> Bool
}
