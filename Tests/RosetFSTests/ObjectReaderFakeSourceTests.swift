// The in-memory RangeSource the read-path tests run against, with counters (calls, bytes,
// concurrency, in-flight buffer bytes), optional latency, fault injection and a gate that holds
// calls, plus seeded content. A unit-test fake only: the real source is SignedURLReader over HTTP.
import Foundation
import Testing
@testable import RosetFS

struct ReadPathFakeError: Error, Equatable { var offset: Int64 }

final class ReadPathFakeSource: RangeSource, @unchecked Sendable {
    let bytes: [UInt8]
    /// Sleep per call, in microseconds.
    let latencyMicroseconds: UInt32
    /// Sampled on every call: in-flight buffer bytes + the cache's resident bytes.
    weak var cache: BlockCache?

    private let condition = NSCondition()
    private var _calls = 0
    private var _bytesFetched = 0
    private var _concurrent = 0
    private var _maxConcurrent = 0
    private var _inFlightBytes = 0
    private var _peakInFlightPlusResident = 0
    private var _largestRequest = 0
    private var _failures = 0
    private var _gateOffset: Int64?
    private var _blocked = 0
    private var _shouldFail: ((Int64, Int) -> Bool)?

    init(bytes: [UInt8], latencyMicroseconds: UInt32 = 0) {
        self.bytes = bytes
        self.latencyMicroseconds = latencyMicroseconds
    }

    var calls: Int { condition.withLock { _calls } }
    var bytesFetched: Int { condition.withLock { _bytesFetched } }
    var maxConcurrent: Int { condition.withLock { _maxConcurrent } }
    var concurrent: Int { condition.withLock { _concurrent } }
    var peakInFlightPlusResident: Int { condition.withLock { _peakInFlightPlusResident } }
    var largestRequest: Int { condition.withLock { _largestRequest } }
    var failures: Int { condition.withLock { _failures } }
    var blocked: Int { condition.withLock { _blocked } }

    /// Calls for (offset, count) for which this returns true throw ReadPathFakeError.
    func failWhen(_ rule: ((Int64, Int) -> Bool)?) { condition.withLock { _shouldFail = rule } }

    /// Holds every call at or beyond `offset` until `openGate()`.
    func closeGate(at offset: Int64) { condition.withLock { _gateOffset = offset } }
    func openGate() {
        condition.withLock { _gateOffset = nil }
        condition.broadcast()
    }

    func read(offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        condition.lock()
        _calls += 1
        _concurrent += 1
        _maxConcurrent = max(_maxConcurrent, _concurrent)
        _inFlightBytes += buffer.count
        _largestRequest = max(_largestRequest, buffer.count)
        // Under this lock, so that a fetch that just finished is counted in flight or resident,
        // never both (the cache counts it resident only after its call returned).
        let resident = cache?.residentBytes ?? 0
        _peakInFlightPlusResident = max(_peakInFlightPlusResident, _inFlightBytes + resident)
        let shouldFail = _shouldFail?(offset, buffer.count) ?? false
        while let gate = _gateOffset, offset >= gate {
            _blocked += 1
            condition.wait()
            _blocked -= 1
        }
        condition.unlock()
        defer {
            condition.withLock {
                _concurrent -= 1
                _inFlightBytes -= buffer.count
            }
        }
        if latencyMicroseconds > 0 { usleep(latencyMicroseconds) }
        if shouldFail {
            condition.withLock { _failures += 1 }
            throw ReadPathFakeError(offset: offset)
        }
        guard offset < Int64(bytes.count) else { return 0 }
        let count = min(buffer.count, bytes.count - Int(offset))
        bytes.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + Int(offset), byteCount: count)
        }
        condition.withLock { _bytesFetched += count }
        return count
    }
}

/// splitmix64: reproducible content and workloads.
struct ReadPathSeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum ReadPathFixture {
    static let mebibyte = 1024 * 1024

    /// `count` pseudo-random bytes; different seeds give different content.
    static func content(count: Int, seed: UInt64) -> [UInt8] {
        var generator = ReadPathSeededGenerator(seed: seed)
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            var index = 0
            while index + 8 <= count {
                raw.storeBytes(of: generator.next(), toByteOffset: index, as: UInt64.self)
                index += 8
            }
            while index < count { raw[index] = UInt8(truncatingIfNeeded: generator.next()); index += 1 }
            initialized = count
        }
    }

    /// 64 MiB shared by the tests that scan large objects.
    static let large = content(count: 64 * mebibyte, seed: 64)

    /// Whether `result` is exactly bytes [offset, offset + result.count) of `bytes` (memcmp).
    static func matches(_ result: [UInt8], _ bytes: [UInt8], at offset: Int64) -> Bool {
        if result.isEmpty { return true }
        guard offset >= 0, Int(offset) + result.count <= bytes.count else { return false }
        return result.withUnsafeBytes { r in
            bytes.withUnsafeBytes { b in memcmp(r.baseAddress!, b.baseAddress! + Int(offset), result.count) == 0 }
        }
    }

    /// Reads `bytes`, the object behind `reader`, front to back in reads of `step` bytes; returns
    /// how many reads did not give exactly the expected bytes.
    static func mismatchesOfASequentialScan(_ reader: ObjectReader, _ bytes: [UInt8], step: Int) throws -> Int {
        var wrong = 0
        for offset in stride(from: Int64(0), to: Int64(bytes.count), by: step) {
            let result = try reader.read(offset: offset, length: step)
            if result.count != expectedCount(bytes, offset: offset, length: step) || !matches(result, bytes, at: offset) {
                wrong += 1
            }
        }
        return wrong
    }

    /// What a correct read returns.
    static func expectedCount(_ bytes: [UInt8], offset: Int64, length: Int) -> Int {
        guard offset >= 0, offset < Int64(bytes.count), length > 0 else { return 0 }
        return min(length, bytes.count - Int(offset))
    }

    /// Waits (bounded) until no call is in flight and the count of calls stops changing.
    static func waitUntilQuiet(_ source: ReadPathFakeSource) {
        var last = -1
        for _ in 0..<200 {
            let calls = source.calls
            if calls == last && source.concurrent == 0 { return }
            last = calls
            usleep(20_000)
        }
    }
}

@Suite struct ObjectReaderFakeSourceTests {
    @Test func fakeReturnsItsBytesAndCountsCalls() throws {
        let bytes = ReadPathFixture.content(count: 1000, seed: 1)
        let source = ReadPathFakeSource(bytes: bytes)
        var buffer = [UInt8](repeating: 0, count: 300)
        let count = try buffer.withUnsafeMutableBytes { try source.read(offset: 900, into: $0) }
        #expect(count == 100)
        #expect(Array(buffer[0..<100]) == Array(bytes[900..<1000]))
        #expect(source.calls == 1 && source.bytesFetched == 100)
        source.failWhen { offset, _ in offset == 0 }
        #expect(throws: ReadPathFakeError(offset: 0)) {
            try buffer.withUnsafeMutableBytes { try source.read(offset: 0, into: $0) }
        }
    }
}
