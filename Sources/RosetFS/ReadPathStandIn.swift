// TEMPORARY STAND-IN, REPLACED AT MERGE by BlockCache.swift and ObjectReader.swift from the
// read-path branch. Same public API, no caching and no read-ahead: ObjectReader.read reads
// straight from its source. Delete this file when those two files land.

public protocol RangeSource: AnyObject, Sendable {
    func read(offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

public final class BlockCache: @unchecked Sendable {
    public init(capacityBytes: Int) {}
    public func invalidate(objectKey: String) {}
}

public final class ObjectReader: @unchecked Sendable {
    private let size: Int64
    private let source: RangeSource

    /// objectKey names the content version (e.g. nodeId + etag/version + size), so blocks never mix versions.
    public init(objectKey: String, size: Int64, source: RangeSource, cache: BlockCache) {
        self.size = size
        self.source = source
    }

    public func read(offset: Int64, length: Int) throws -> [UInt8] {
        guard offset < size, length > 0 else { return [] }
        let wanted = Int(min(Int64(length), size - offset))
        var out = [UInt8](repeating: 0, count: wanted)
        var filled = 0
        try out.withUnsafeMutableBytes { buffer in
            while filled < wanted {
                let n = try source.read(offset: offset + Int64(filled),
                                        into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                if n <= 0 { break }
                filled += n
            }
        }
        if filled < wanted { out.removeSubrange(filled...) }
        return out
    }

    public func close() {}
}
