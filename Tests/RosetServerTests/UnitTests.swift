// Pure logic of the server: Range parsing, SigV4 presigning (AWS's published example), URL
// signatures, and the faults JSON merge.
import Foundation
import Testing
@testable import RosetServer

struct ServerUnitTests {
    /// roset-server(1) and --help state this default of --url-ttl.
    @Test func signedURLsLiveAnHourByDefault() {
        #expect(FaultSettings().urlTTLSeconds == 3600)
    }

    @Test func rangeParsing() {
        #expect(ByteRange.parse(nil, size: 10) == .whole)
        #expect(ByteRange.parse("bytes=0-4", size: 10) == .range(0, 4))
        #expect(ByteRange.parse("bytes=5-", size: 10) == .range(5, 9))
        #expect(ByteRange.parse("bytes=-3", size: 10) == .range(7, 9))
        #expect(ByteRange.parse("bytes=8-100", size: 10) == .range(8, 9))
        #expect(ByteRange.parse("bytes=10-11", size: 10) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=5-2", size: 10) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=0-1,4-5", size: 10) == .whole)
        #expect(ByteRange.parse("bytes=0-", size: 0) == .unsatisfiable)
    }

    /// https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
    @Test func sigV4PresignMatchesAWSExample() {
        let signer = SigV4(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1")
        let url = signer.presign(method: "GET", endpoint: "https://examplebucket.s3.amazonaws.com",
                                 host: "examplebucket.s3.amazonaws.com", path: "/test.txt", query: [], expires: 86400,
                                 now: Date(timeIntervalSince1970: 1369353600))
        #expect(url.hasSuffix("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"))
    }

    @Test func urlSignatureCoversMethodResourceAndExpiry() {
        let signer = URLSigner(secret: Data("secret".utf8))
        let future = Int(Date().timeIntervalSince1970) + 60
        let sig = signer.signature(method: "GET", resource: "o/a/b/c", expires: future)
        #expect(signer.isValid(method: "GET", resource: "o/a/b/c", expires: String(future), sig: sig))
        #expect(!signer.isValid(method: "PUT", resource: "o/a/b/c", expires: String(future), sig: sig))
        #expect(!signer.isValid(method: "GET", resource: "o/a/b/d", expires: String(future), sig: sig))
        #expect(!signer.isValid(method: "GET", resource: "o/a/b/c", expires: String(future + 1), sig: sig))
        let past = Int(Date().timeIntervalSince1970) - 1
        #expect(!signer.isValid(method: "GET", resource: "o/a/b/c", expires: String(past),
                                sig: signer.signature(method: "GET", resource: "o/a/b/c", expires: past)))
    }

    @Test func faultSettingsMergeKeepsOtherClasses() throws {
        var f = FaultSettings()
        try f.merge(["errorRate": ["upload": 0.5], "ignoreRange": true])
        #expect(f.errorRate["upload"] == 0.5 && f.errorRate["control"] == 0)
        #expect(f.ignoreRange)
        #expect(throws: APIError.self) { try f.merge(["dropRate": ["sideways": 0.1]]) }
        #expect(throws: APIError.self) { try f.merge(["urlTTLSeconds": 0]) }
        let (classes, value) = try FaultSettings.parseClassValue("all=0.25")
        #expect(classes.count == 3 && value == 0.25)
    }
}
