// How a file of a given size is cut into upload parts. Invariant: no file needs more than
// `maxParts` parts (the S3 limit) and parts other than the last are at least the configured size.

struct PartPlan: Hashable, Sendable {
    static let maxParts = 10_000
    static let minimumPartSize: Int64 = 5 << 20

    let size: Int64
    let partSize: Int64

    /// `configured` bytes per part, grown (in whole MiB) until `size` fits in `maxParts` parts.
    init(size: Int64, configuredPartSize configured: Int64) {
        self.size = size
        var part = max(configured, 1)
        if size > part * Int64(PartPlan.maxParts) {
            let needed = (size + Int64(PartPlan.maxParts) - 1) / Int64(PartPlan.maxParts)
            let mib: Int64 = 1 << 20
            part = (needed + mib - 1) / mib * mib
        }
        partSize = part
    }

    /// Single PUT below the part size, multipart from it on.
    var isMultipart: Bool { size >= partSize }
    var partCount: Int { size == 0 ? 1 : Int((size + partSize - 1) / partSize) }

    /// Byte range of part `number` (1-based).
    func range(ofPart number: Int) -> (offset: Int64, length: Int64) {
        let offset = Int64(number - 1) * partSize
        return (offset, max(0, min(partSize, size - offset)))
    }
}
