// SignedURLReader already has the RangeSource shape: a ranged read of one node's content; its
// store's plain-http reads into pipes make it a PipeRangeSource too.
import RosetClient

extension SignedURLReader: PipeRangeSource {
    public var canFillPipes: Bool { canReadIntoPipes }

    public func fillPipes(offset: Int64, pipes: [(fd: Int32, count: Int)], filled: (Int) -> Bool) throws -> Bool {
        try read(offset: offset, intoPipes: pipes.map { PipeDownloader.Target(fd: $0.fd, count: $0.count) }, filled: filled)
    }
}
