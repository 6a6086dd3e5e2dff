// The man pages against the code: `man -l` renders mount.roset(8), `groff -man -ww -z` finds
// nothing to warn about in any page, every -o option ConfigurationResolver accepts is documented
// in mount.roset(8), every option the page documents is accepted, and each "Default:" the page
// states is the default a mount really gets; mount(8)'s flags the page lists are the ones the
// helper takes; roset-fuse(1) and roset-server(1) name every flag of the programs' --help and
// state the defaults --help states; the pages and the README agree where they give one number.
import Foundation
import Testing
@testable import MountHelper
import TestSupport

/// The package's root, found from this file's path (Tests/MountHelperTests/ManPageTests.swift).
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

private func tool(_ name: String) -> String? {
    ["/usr/bin/", "/bin/"].map { $0 + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

private func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let r = try CapturedRun.run(executable, arguments, environment: [
        "PATH": "/usr/bin:/bin", "MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat", "LANG": "C.UTF-8"])
    return (r.status, r.stdout, r.stderr)
}

/// The troff source as plain words: font changes and escapes removed.
private func plainText(_ troff: String) -> String {
    var s = troff
    for (from, to) in [("\\-", "-"), ("\\fB", ""), ("\\fR", ""), ("\\fI", ""), ("\\fP", ""), ("\\(dq", "\""), ("\\&", "")] {
        s = s.replacingOccurrences(of: from, with: to)
    }
    return s
}

/// The OPTIONS section of mount.roset(8), split into its `.TP` entries: (tag line, body).
private func optionEntries(_ troff: String) -> [(tag: String, body: String)] {
    let lines = troff.components(separatedBy: "\n")
    guard let start = lines.firstIndex(where: { $0.hasPrefix(".SH OPTIONS") }) else { return [] }
    let end = lines[(start + 1)...].firstIndex(where: { $0.hasPrefix(".SH ") }) ?? lines.count
    var entries: [(String, String)] = []
    var i = start + 1
    while i < end {
        if lines[i] == ".TP", i + 1 < end {
            var body: [String] = []
            var j = i + 2
            while j < end, lines[j] != ".TP", !lines[j].hasPrefix(".SS") { body.append(lines[j]); j += 1 }
            entries.append((plainText(lines[i + 1]), plainText(body.joined(separator: "\n"))))
            i = j
        } else {
            i += 1
        }
    }
    return entries
}

/// Option names a tag line documents: `.BI cache_ttl= seconds` → ["cache_ttl"] (in a `.BI` tag
/// only `name=` words are names, the others are placeholders), `.B ro, rw` → ["ro", "rw"].
private func optionNames(inTag tag: String) -> [String] {
    let bold = tag.hasPrefix(".B ") || tag.hasPrefix(".BR ")
    guard bold || tag.hasPrefix(".BI ") else { return [] }
    let words = tag.split(separator: " ", maxSplits: 1).dropFirst().joined()
        .split(whereSeparator: { $0 == " " || $0 == "," })
    return words.compactMap { w -> String? in
        let parts = w.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let name = String(parts[0])
        guard name.range(of: "^[a-z_][a-z0-9_]*$", options: .regularExpression) != nil else { return nil }
        return parts.count == 2 || bold ? name : nil
    }
}

/// The names in `case "name":` of OptionSettings.apply, read from the code itself.
private func optionNamesInResolver() throws -> Set<String> {
    let source = try String(contentsOf: packageRoot.appendingPathComponent("Sources/MountHelper/ConfigurationResolver.swift"),
                            encoding: .utf8)
    let regex = try NSRegularExpression(pattern: #"case "([a-z_]+)":"#)
    let range = NSRange(source.startIndex..., in: source)
    return Set(regex.matches(in: source, range: range).compactMap { m in
        Range(m.range(at: 1), in: source).map { String(source[$0]) }
    })
}

@Suite struct ManPageTests {
    let manPage = packageRoot.appendingPathComponent("man/mount.roset.8")

    @Test func manRendersMountRoset8() throws {
        guard let man = tool("man") else {
            print("skipped: man(1) is not installed")
            return
        }
        let r = try run(man, ["-l", manPage.path])
        #expect(r.status == 0, "man -l: \(r.stderr)")
        #expect(r.stdout.contains("mount.roset"))
        #expect(r.stdout.contains("apikey_file="))
        #expect(r.stdout.contains("EXIT STATUS"))
        #expect(!r.stderr.lowercased().contains("warning"), "\(r.stderr)")
    }

    @Test func groffFindsNoWarningInAnyPage() throws {
        guard let groff = tool("groff") else {
            print("skipped: groff is not installed")
            return
        }
        let pages = try FileManager.default.contentsOfDirectory(atPath: packageRoot.appendingPathComponent("man").path)
            .filter { $0.hasSuffix(".8") || $0.hasSuffix(".1") }.sorted()
        #expect(pages.contains("mount.roset.8") && pages.contains("roset-fuse.1"))
        for page in pages {
            let r = try run(groff, ["-man", "-ww", "-z", packageRoot.appendingPathComponent("man/" + page).path])
            #expect(r.status == 0 && r.stderr.isEmpty, "groff -man -ww -z \(page): \(r.stderr)")
        }
    }

    @Test func everyAcceptedOptionIsDocumentedAndEveryDocumentedOneAccepted() throws {
        let troff = try String(contentsOf: manPage, encoding: .utf8)
        let entries = optionEntries(troff)
        let documented = Set(entries.flatMap { optionNames(inTag: $0.tag) })
        let options = plainText(troff)

        let accepted = try optionNamesInResolver()
            .union(MountConfiguration.VFSFlag.allCases.map(\.rawValue))
        #expect(accepted.contains("apikey_file") && accepted.contains("max_threads"), "could not read the resolver: \(accepted)")
        let undocumented = accepted.subtracting(documented).sorted()
        #expect(undocumented.isEmpty, "options the code accepts but mount.roset(8) does not document: \(undocumented)")

        // mount(8)/fstab options are accepted and named in the page (not as .TP entries).
        for name in ConfigurationResolver.passedAlong {
            #expect(options.contains(".BR \(name)") || options.contains(".B \(name)"), "\(name) is not in mount.roset(8)")
        }

        // Every documented option is one the code takes (refusing unknown ones, not sloppy).
        for name in documented where !["apikey_file"].contains(name) {
            let value = ["api_url": "http://127.0.0.1:1", "uid": "0", "gid": "0", "umask": "022", "file_mode": "0644",
                         "dir_mode": "0755", "max_read": "131072", "blksize": "4096", "spool_dir": "/tmp/s",
                         "data_cache_dir": "/tmp/c",
                         "mount_id": "m", "log_file": "/tmp/l", "metrics": "127.0.0.1:9464", "log_level": "debug",
                         "subdir": "a/b"][name]
            let numeric = ["cache_ttl", "negative_ttl", "cache_size_mb", "spool_max_mb", "upload_concurrency", "part_size_mb",
                           "shutdown_grace", "max_threads", "upload_delay_ms", "read_ahead_kb", "request_timeout",
                           "retries", "data_cache_max_mb", "data_cache_min_free_mb"].contains(name)
            let optstr = value.map { "\(name)=\($0)" } ?? (numeric ? "\(name)=8" : name)
            var request = MountRequest(spec: "default", mountpoint: "/mnt/x", options: try MountOptionList.parse(optstr))
            request.sloppy = false
            #expect(throws: Never.self, "documented option \(optstr) is refused") {
                _ = try ConfigurationResolver.resolve(request, environment: ["ROSET_API_KEY": "k"],
                                                      identity: ProcessIdentity(uid: 0, gid: 0, home: "/root"))
            }
        }
    }

    @Test func everyRosetFuseFlagIsInRosetFuse1() throws {
        let page = plainText(try String(contentsOf: packageRoot.appendingPathComponent("man/roset-fuse.1"), encoding: .utf8))
        let help = RosetFuseCommandLine.helpMessage(columns: 200)
        let regex = try NSRegularExpression(pattern: #"--[a-z][a-z-]+"#)
        let flags = Set(regex.matches(in: help, range: NSRange(help.startIndex..., in: help)).compactMap {
            Range($0.range, in: help).map { String(help[$0]) }
        })
        #expect(flags.contains("--api-key-file") && flags.contains("--read-only"), "could not read --help: \(help)")
        let missing = flags.filter { !page.contains($0) }.sorted()
        #expect(missing.isEmpty, "roset-fuse(1) does not document \(missing)")
    }

    @Test func statedDefaultsAreTheRealDefaults() throws {
        let entries = optionEntries(try String(contentsOf: manPage, encoding: .utf8))
        let config = try ConfigurationResolver.resolve(MountRequest(spec: "default", mountpoint: "/mnt/x", options: []),
                                                       environment: ["ROSET_API_KEY": "k"],
                                                       identity: ProcessIdentity(uid: 0, gid: 0, home: "/root"))
        func number(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(d) }
        let expected: [String: String] = [
            "api_url": config.apiURL.absoluteString,
            "cache_ttl": number(config.cacheTTL),
            "negative_ttl": number(config.negativeTTL),
            "cache_size_mb": String(config.cacheSizeMB),
            "spool_max_mb": String(config.spoolMaxMB),
            "upload_concurrency": String(config.uploadConcurrency),
            "part_size_mb": String(config.partSizeMB),
            "shutdown_grace": number(config.shutdownGrace),
            "max_threads": String(config.maxThreads),
            "read_ahead_kb": String(config.readAheadKB),
            "request_timeout": number(config.requestTimeout),
            "retries": String(config.maxAttempts - 1),
            "umask": String(config.umask, radix: 8).count < 3 ? "0" + String(config.umask, radix: 8) : String(config.umask, radix: 8),
            "spool_dir": config.spoolDirectory,
            "data_cache_dir": config.dataCacheDirectory,
            "log_level": config.logLevel.rawValue,
            // Defaults the FUSE layer sets: pinned on the code's side by FUSESessionTests
            // (optionStringEscapesAndOmitsKernelDefaults) and MountAdminTests (st_blksize).
            "max_read": "1015808",
            "blksize": "4096",
        ]
        for (name, value) in expected {
            guard let entry = entries.first(where: { optionNames(inTag: $0.tag).contains(name) }) else {
                Issue.record("mount.roset(8) has no entry for \(name)")
                continue
            }
            let body = entry.body.replacingOccurrences(of: "\n", with: " ")
            guard let at = body.range(of: "Default:") else {
                Issue.record("the entry for \(name) states no default")
                continue
            }
            let stated = body[at.upperBound...]
            #expect(stated.prefix(80).contains(value), "mount.roset(8) states \(name) default as \"\(stated.prefix(60))\", the code uses \(value)")
        }
    }

    /// The flags of the SYNOPSIS (-s -f -n -v -N -o -t) are the ones HelperArguments takes, each
    /// with the meaning the page gives it.
    @Test func commandLineFlagsOfMountRoset8() throws {
        let page = plainText(try String(contentsOf: manPage, encoding: .utf8))
        for flag in ["-s", "-f", "-n", "-v", "-N", "-o", "-t"] {
            #expect(page.contains(".OP \(flag)"), "\(flag) is not in the SYNOPSIS")
        }
        let r = try HelperArguments.parse(["m", "/mnt/x", "-s", "-f", "-n", "-v", "-N", "/proc/1/ns/mnt", "-o", "ro", "-t", "fuse.roset"])
        #expect(r.sloppy && r.fake && r.verbose && r.mountNamespace == "/proc/1/ns/mnt")
        #expect(r.options.map(\.name) == ["ro"])
        let c = try ConfigurationResolver.resolve(r, environment: ["ROSET_API_KEY": "k"],
                                                  identity: ProcessIdentity(uid: 0, gid: 0, home: "/root"))
        #expect(c.fake && c.verbose && c.logLevel == .debug, "-v logs one level more than log_level= (info → debug)")
    }

    /// roset-fuse(1)'s stated defaults are the roset-fuse command line's.
    @Test func rosetFuse1StatesItsDefaults() throws {
        let page = plainText(try String(contentsOf: packageRoot.appendingPathComponent("man/roset-fuse.1"), encoding: .utf8))
        let c = try MountCommandLine.parse(["roset-fuse", "/m"], environment: ["ROSET_API_KEY": "k"],
                                           identity: ProcessIdentity(uid: 0, gid: 0, home: "/root"))
        func stated(_ flag: String) -> String? {
            guard let at = page.range(of: ".BI \(flag) ") ?? page.range(of: ".B \(flag)") else { return nil }
            let rest = page[at.upperBound...]
            let end = rest.range(of: "\n.TP")?.lowerBound ?? rest.endIndex
            guard let d = rest[..<end].range(of: "Default:") else { return nil }
            return String(rest[d.upperBound..<end]).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(stated("--cache-ttl")?.hasPrefix(String(Int(c.cacheTTL))) == true)
        #expect(stated("--cache-size-mb")?.hasPrefix(String(c.cacheSizeMB)) == true)
        #expect(stated("--log-level")?.hasPrefix(c.logLevel.rawValue) == true)
        #expect(stated("--api-url")?.contains(c.apiURL.absoluteString) == true)
        #expect(stated("--spool-dir")?.contains(c.spoolDirectory) == true)
        #expect(c.subdir == nil && stated("--subdir")?.contains("whole mount") == true)
        #expect(!c.foreground && !c.readOnly && !c.allowOther)
        // -f is foreground here and fake for mount.roset: the page says so.
        #expect(page.contains("is mount(8)'s \\(lqfake\\(rq"))
    }

    /// roset-server(1) documents every flag `roset-server --help` lists (the --fault-* family by
    /// name), and states each default --help states.
    @Test func rosetServer1MatchesItsHelp() throws {
        let binary = TestBinaries.path("roset-server")
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            print("skipped rosetServer1MatchesItsHelp: \(binary) is not built (ROSET_WITHOUT_SERVER)")
            return
        }
        let help = try run(binary, ["--help"]).stdout.replacingOccurrences(of: "\n", with: " ")
            .replacingOccurrences(of: #"\s+"#, with: " ", options: .regularExpression)
        let page = plainText(try String(contentsOf: packageRoot.appendingPathComponent("man/roset-server.1"), encoding: .utf8))
        let flagRegex = try NSRegularExpression(pattern: #"--[a-z][a-z0-9-]+"#)
        func flags(_ text: String) -> Set<String> {
            Set(flagRegex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
                Range($0.range, in: text).map { String(text[$0]) }
            })
        }
        let inHelp = flags(help).filter { !$0.hasPrefix("--fault-") && $0 != "--help" }
        #expect(inHelp.contains("--listen") && inHelp.contains("--backend"), "could not read --help: \(help)")
        let missing = inHelp.filter { !page.contains($0) }.sorted()
        #expect(missing.isEmpty, "roset-server(1) does not document \(missing)")
        #expect(page.contains("--fault-*"))
        let unknown = flags(page).filter { !$0.hasPrefix("--fault-") && $0 != "--help" && !inHelp.contains($0) }.sorted()
        #expect(unknown.isEmpty, "roset-server(1) documents flags the server does not take: \(unknown)")
        // Each "--flag <value> ... (default: X)" of --help is stated in the flag's entry.
        let defaults = try NSRegularExpression(pattern: #"(--[a-z0-9-]+) <[^>]+> (?:(?!--)[^()])*\(default: ([^)]+)\)"#)
        for m in defaults.matches(in: help, range: NSRange(help.startIndex..., in: help)) {
            guard let f = Range(m.range(at: 1), in: help), let v = Range(m.range(at: 2), in: help) else { continue }
            let flag = String(help[f]), value = String(help[v])
            guard let at = page.range(of: ".BI \(flag) ") else { Issue.record("no entry for \(flag)"); continue }
            let rest = page[at.upperBound...]
            let entry = rest[..<(rest.range(of: "\n.TP")?.lowerBound ?? rest.endIndex)]
            #expect(entry.contains("Default: \(value)"), "--help says \(flag) defaults to \(value); roset-server(1): \(entry)")
        }
    }

    /// mount.roset(8)'s direct_io gain is the one docs/PERFORMANCE.md measured (cold read with
    /// direct_io over the same read without, in each latest run), and the README's everyday
    /// lines say where the key goes without api_url=.
    @Test func readmeAndPerformanceFiguresAgreeWithTheManPage() throws {
        let perf = try String(contentsOf: packageRoot.appendingPathComponent("docs/PERFORMANCE.md"), encoding: .utf8)
        func ratio(_ row: String, column: Int) -> Double? {
            guard let line = perf.split(separator: "\n").first(where: { $0.hasPrefix("| \(row) |") }) else { return nil }
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count > column else { return nil }
            let cell = cells[column]
            // "(0.42)" inside a cell, or a bare "0.25".
            if let open = cell.firstIndex(of: "("), let close = cell.firstIndex(of: ")") {
                return Double(cell[cell.index(after: open)..<close])
            }
            return Double(cell)
        }
        let benchGain = try #require(ratio("the same read with `-o direct_io`", column: 2)) / (try #require(ratio("cold read of 1 GiB", column: 2)))
        let compareGain = try #require(ratio("the same, `-o direct_io` (MiB/s)", column: 2)) / (try #require(ratio("seq read 1 GiB, cold (MiB/s)", column: 2)))
        let low = min(benchGain, compareGain), high = max(benchGain, compareGain)
        let page = plainText(try String(contentsOf: manPage, encoding: .utf8)).replacingOccurrences(of: "\n", with: " ")
        let stated = String(format: "this is faster (%.1f to %.1f times", low, high)
        #expect(page.contains(stated), "docs/PERFORMANCE.md gives \(stated); mount.roset(8) says otherwise")
        let readme = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains("without it, or `ROSET_API_URL`, the key is\nsent to the hosted service at https://api.roset.dev"))
    }
}
