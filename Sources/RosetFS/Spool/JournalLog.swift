// One entry's journal file, `journal/<entryId>.rec` (spool layout 2): the entry's records appended
// one after another, each framed as
//
//     rec <byte count>\n<the record as JournalRecord.encoded() makes it>
//
// Why one appended file per entry rather than one file per record: every record file was a new
// inode (plus a temporary one), and a file system that churns thousands of inodes a second pays
// for it (ext4 without a journal scans recently deleted inodes on every allocation; on this
// project's machines that scan was half of the daemon's time during small-file creates).
//
// Invariants
// - Frames are only appended; a frame is never rewritten in place. A rewrite (compaction, or the
//   repair of a torn tail) writes a new file beside the old one and renames it over.
// - Each frame is self-checking (the record's own sha256 line), so a torn append (kill -9 in the
//   middle of a large write, a power cut before the fsync) is detected; the newest valid frame
//   before it is the entry's state.
// - A file of layout 1 (`<entryId>.<sequence, 10 digits>.rec`, one bare record) is still read, so
//   a spool written by an earlier version recovers.
import Foundation

enum JournalLog {
    static let fileSuffix = ".rec"
    private static let tag = Array("rec ".utf8)

    static func fileName(_ entryId: String) -> String { entryId + fileSuffix }

    /// The entry a journal file belongs to (both layouts), or nil for anything else.
    static func entryId(ofFile file: String) -> String? {
        guard file.hasSuffix(fileSuffix) else { return nil }
        let parts = file.split(separator: ".")
        if parts.count == 2 { return String(parts[0]) }
        if parts.count == 3, Int(parts[1]) != nil { return String(parts[0]) }
        return nil
    }

    static func frame(_ record: JournalRecord) throws -> [UInt8] {
        let body = try record.encoded()
        return tag + Array("\(body.count)\n".utf8) + body
    }

    /// What one journal file holds.
    struct Contents {
        /// The record with the highest sequence among the valid frames.
        var newest: JournalRecord?
        /// Bytes from the start that are whole, valid frames (the rest is a torn tail).
        var validLength: Int
        /// Why the file is not entirely valid, if it is not.
        var problem: String?
    }

    /// The file's records; with `entryId`, a record of another entry counts as a problem and is
    /// never the newest (a file must only hold its own entry's records).
    static func read(_ bytes: [UInt8], entryId: String? = nil) -> Contents {
        if bytes.first == UInt8(ascii: "{") {
            // Layout 1: the whole file is one record.
            do {
                let record = try JournalRecord.decode(bytes)
                if let entryId, record.entryId != entryId {
                    return Contents(newest: nil, validLength: 0, problem: "record of entry \(record.entryId)")
                }
                return Contents(newest: record, validLength: bytes.count)
            } catch { return Contents(newest: nil, validLength: 0, problem: "\(error)") }
        }
        var contents = Contents(newest: nil, validLength: 0)
        var at = 0
        while at < bytes.count {
            guard let record = nextFrame(bytes, at: &at, problem: &contents.problem) else { break }
            if let entryId, record.entryId != entryId {
                contents.problem = "frame of entry \(record.entryId) before byte \(at)"
                break
            }
            if contents.newest.map({ $0.sequence <= record.sequence }) ?? true { contents.newest = record }
            contents.validLength = at
        }
        return contents
    }

    static func read(path: String, entryId: String? = nil) -> Contents {
        read(FileManager.default.contents(atPath: path).map { Array($0) } ?? [], entryId: entryId)
    }

    /// Decodes the frame at `at` and moves past it; nil (with `problem`) when it is not whole.
    private static func nextFrame(_ bytes: [UInt8], at: inout Int, problem: inout String?) -> JournalRecord? {
        let rest = bytes[at...]
        guard rest.starts(with: tag), let newline = rest.firstIndex(of: UInt8(ascii: "\n")), newline - at <= tag.count + 12,
              let count = Int(String(decoding: bytes[(at + tag.count)..<newline], as: UTF8.self)), count > 0 else {
            problem = "frame header torn at byte \(at)"
            return nil
        }
        let start = newline + 1
        guard bytes.count - start >= count else {
            problem = "frame at byte \(at) is cut short (\(bytes.count - start) of \(count) bytes)"
            return nil
        }
        do {
            let record = try JournalRecord.decode(Array(bytes[start..<(start + count)]))
            at = start + count
            return record
        } catch {
            problem = "frame at byte \(at): \(error)"
            return nil
        }
    }
}
