// Extent buffers come straight from mmap and go back with munmap, so memory the cache frees is
// returned to the kernel at once: the process's peak RSS follows the cache's own accounting
// instead of malloc's retention and fragmentation (glibc raises its mmap threshold after the first
// large free, after which big buffers would come from arenas that are rarely trimmed).
#if canImport(Glibc)
import Glibc
#endif

enum ReadPathMemory {
    static let pageSize = 4096

    static func roundedToPage(_ bytes: Int) -> Int { (bytes + pageSize - 1) / pageSize * pageSize }

    /// `bytes` must be a positive multiple of the page size.
    static func allocate(_ bytes: Int) throws -> UnsafeMutableRawBufferPointer {
        let address = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let address, address != MAP_FAILED else { throw FSError(ENOMEM) }
        return UnsafeMutableRawBufferPointer(start: address, count: bytes)
    }

    static func free(_ buffer: UnsafeMutableRawBufferPointer) {
        if let address = buffer.baseAddress { munmap(address, buffer.count) }
    }
}
