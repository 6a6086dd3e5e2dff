// The key file: permissions, owner, empty, missing, first line trimmed.
import Foundation
import Testing
@testable import MountHelper
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct KeyFileTests {
    func withKeyFile(_ contents: String, mode: mode_t, owner: uid_t? = nil,
                     _ body: (String) throws -> Void) throws {
        let dir = NSTemporaryDirectory() + "roset-key-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/key"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(contents.utf8)))
        #expect(chmod(path, mode) == 0)
        if let owner { #expect(chown(path, owner, gid_t(UInt32.max)) == 0) }
        try body(path)
    }

    @Test func firstLineTrimmedIsTheKey() throws {
        try withKeyFile("  rk_live_abc  \nsecond line\n", mode: 0o600) { path in
            let key = try APIKeyFile.read(path, mountingUID: getuid())
            #expect(key.value == "rk_live_abc")
            #expect(key.source.contains(path))
            // through the options too, where it wins over the environment
            let c = try resolve("apikey_file=\(path)", identity: ProcessIdentity(uid: getuid(), gid: getgid(), home: "/h"))
            #expect(c.apiKey.value == "rk_live_abc")
            #expect(!c.description.contains("rk_live_abc"))
        }
    }

    @Test func groupOrOthersAccessIsRefusedWithTheFix() throws {
        for mode: mode_t in [0o644, 0o640, 0o604, 0o620, 0o602] {
            try withKeyFile("k\n", mode: mode) { path in
                let e = refusal { try APIKeyFile.read(path, mountingUID: getuid()) }
                #expect(e?.message.contains("chmod 600 \(path)") == true, "mode \(String(mode, radix: 8))")
                #expect(e?.message.contains("k\n") == false)
            }
        }
        try withKeyFile("k\n", mode: 0o400) { path in
            let k = try APIKeyFile.read(path, mountingUID: getuid()).value
            #expect(k == "k")
        }
    }

    @Test func foreignOwnerIsRefused() throws {
        guard getuid() == 0 else { return }   // chown needs root; CI runs as root
        try withKeyFile("k\n", mode: 0o600, owner: 4321) { path in
            let e = refusal { try APIKeyFile.read(path, mountingUID: 1000) }
            #expect(e?.message.contains("owned by uid 4321") == true)
            #expect(e?.message.contains("chown 1000 \(path)") == true)
            let k = try APIKeyFile.read(path, mountingUID: 4321).value
            #expect(k == "k")
        }
        try withKeyFile("k\n", mode: 0o600, owner: 0) { path in
            let k = try APIKeyFile.read(path, mountingUID: 1000).value   // root-owned is fine
            #expect(k == "k")
        }
    }

    @Test func emptyOrMissingFile() throws {
        try withKeyFile("\n  \n", mode: 0o600) { path in
            let e = refusal { try APIKeyFile.read(path, mountingUID: getuid()) }
            #expect(e?.message.contains("is empty") == true)
        }
        let e = refusal { try APIKeyFile.read("/nonexistent/roset/key", mountingUID: getuid()) }
        #expect(e?.message == "apikey_file /nonexistent/roset/key does not exist")
        let d = refusal { try APIKeyFile.read("/tmp", mountingUID: getuid()) }
        #expect(d?.message.contains("not a regular file") == true)
    }
}
