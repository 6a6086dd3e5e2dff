// CRC32C of spool data: the checksum a journal record (format 2 on) keeps of its data file, so
// that recovery can tell a data file that changed since it was sealed. It sits on the writer's
// path (sequential writes are summed as they arrive, on the thread that answers the kernel's
// write), which is why it is CRC32C through the CPU's crc32 instruction (0.12 CPU-s per GiB here)
// and not SHA-256 (0.64). It guards against torn and damaged files, not against tampering: the
// spool folder is the user's own (mode 0700). `CRC32C` is a value: a copy carries the running state.
import CCRC32C

struct CRC32C {
    /// Decided once per process; both paths give the same values.
    private static let hardware = roset_crc32c_hardware_available() != 0

    /// The checksum of the bytes so far.
    private(set) var value: UInt32 = 0
    /// Bytes summed so far.
    private(set) var count: Int64 = 0

    mutating func update(_ data: UnsafeRawBufferPointer) {
        guard let base = data.baseAddress, data.count > 0 else { return }
        value = Self.hardware ? roset_crc32c_hardware(value, base, data.count)
                              : roset_crc32c_software(value, base, data.count)
        count += Int64(data.count)
    }

    mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if let done: Void = bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) {
            return done
        }
        Array(bytes).withUnsafeBytes { update($0) }
    }

    /// Eight lowercase hex digits, as journal records keep it.
    func hexDigest() -> String {
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }

    static func hex<C: Collection>(of bytes: C) -> String where C.Element == UInt8 {
        var sum = CRC32C()
        sum.update(bytes)
        return sum.hexDigest()
    }
}
