// SHA-256 through libcrypto (OpenSSL): each journal record's checksum line, the spool folder's
// name, and the data checksum of format-1 journal records (format 2 keeps a CRC32C instead, which
// costs the writer a fifth as much; see CRC32C.swift). `SHA256Hasher` is a value: copying it
// copies the running state (SHA256_CTX is a plain C struct), so `finalize()` on a copy leaves the
// original usable.
import COpenSSL

struct SHA256Hasher {
    private var context = SHA256_CTX()
    /// Bytes hashed so far.
    private(set) var count: Int64 = 0

    init() { SHA256_Init(&context) }

    mutating func update(_ data: UnsafeRawBufferPointer) {
        guard let base = data.baseAddress, data.count > 0 else { return }
        SHA256_Update(&context, base, data.count)
        count += Int64(data.count)
    }

    mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if let done: Void = bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) {
            return done
        }
        Array(bytes).withUnsafeBytes { update($0) }
    }

    func finalize() -> [UInt8] {
        var copy = context
        var out = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        SHA256_Final(&out, &copy)
        return out
    }

    func hexDigest() -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex = [UInt8]()
        hex.reserveCapacity(64)
        for byte in finalize() {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    static func hex<C: Collection>(of bytes: C) -> String where C.Element == UInt8 {
        var hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.hexDigest()
    }
}
