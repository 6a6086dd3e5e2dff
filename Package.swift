// swift-tools-version:6.2
//
// roset-fuse: `mount.roset` (a mount(8) helper that mounts Roset-managed object storage through
// FUSE) and `roset-server` (the local control plane). Targets depend downwards only:
//
//   MountRoset (mount.roset) ─▶ MountHelper ─▶ CMount, COpenSSL (the mount registry's file names)
//            └──────────────▶ RosetFUSE ─▶ RosetFS ─▶ RosetClient ─▶ CCurl, CPipes (splice)
//                                  └─▶ CFuse    └─▶ COpenSSL (SHA-256), CCRC32C, CPipes
//   RosetServerMain (roset-server) ─▶ RosetServer ─▶ Hummingbird, GRDB, Crypto
//   RosetClient, RosetFS, RosetFUSE, MountRoset and RosetServer ─▶ RosetMetrics ─▶ swift-metrics,
//   swift-prometheus (metric names, the Prometheus exposition and its endpoint)
//
// Platforms: Linux only (glibc; built and tested on x86_64). The mount side needs the kernel's FUSE,
// libfuse 3, libmount, splice(2) and /proc; nothing here builds on macOS or Windows, so the
// manifest says so instead of listing an Apple platform (`platforms:` can only name those).
//
// Setting ROSET_WITHOUT_SERVER=1 leaves the server and its (slow to build) dependencies out, for
// client-only machines and quick builds of the mount side.
import PackageDescription

#if !os(Linux)
#error("roset-fuse builds on Linux only: it needs FUSE (libfuse 3), libmount, splice(2) and /proc")
#endif

let withServer = Context.environment["ROSET_WITHOUT_SERVER"] == nil

let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let metrics: Target.Dependency = .product(name: "Metrics", package: "swift-metrics")

var products: [Product] = [
    .executable(name: "mount.roset", targets: ["MountRoset"]),
    .executable(name: "roset-bench", targets: ["RosetBench"]),
]
var dependencies: [Package.Dependency] = [
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
]
var targets: [Target] = [
    // C libraries from Debian's -dev packages; each shim header holds the small wrappers Swift needs.
    .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                   providers: [.apt(["libcurl4-openssl-dev"])]),
    .systemLibrary(name: "CFuse", path: "Sources/CFuse", pkgConfig: "fuse3",
                   providers: [.apt(["libfuse3-dev"])]),
    .systemLibrary(name: "CMount", path: "Sources/CMount", pkgConfig: "mount",
                   providers: [.apt(["libmount-dev"])]),
    .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "libcrypto",
                   providers: [.apt(["libssl-dev"])]),
    // glibc's splice(2), F_SETPIPE_SZ, FIONREAD and sync_file_range(2) (header only).
    .systemLibrary(name: "CPipes", path: "Sources/CPipes"),
    // CRC32C of spool data, through SSE4.2's crc32 instruction where present (header only).
    .systemLibrary(name: "CCRC32C", path: "Sources/CCRC32C"),
    // glibc's mallopt(3) (header only).
    .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),

    // Metric names with their HELP text, the Prometheus exposition and its HTTP endpoint.
    .target(name: "RosetMetrics", dependencies: [metrics, .product(name: "Prometheus", package: "swift-prometheus")]),
    .target(name: "RosetClient", dependencies: ["CCurl", "CPipes", "RosetMetrics", metrics, logging]),
    .target(name: "RosetFS", dependencies: ["RosetClient", "COpenSSL", "CPipes", "CCRC32C", "RosetMetrics", metrics, logging]),
    .target(name: "RosetFUSE", dependencies: ["CFuse", "RosetFS", "RosetMetrics", metrics, logging]),
    .target(name: "MountHelper", dependencies: ["CMount", "COpenSSL", argumentParser, logging]),
    .executableTarget(name: "MountRoset",
                      dependencies: ["MountHelper", "RosetFUSE", "RosetFS", "RosetClient", "RosetMetrics", "CMalloc",
                                     argumentParser, logging]),
    // Transfer benchmark of RosetClient against curl on the same signed URLs.
    .executableTarget(name: "RosetBench", dependencies: ["RosetClient", argumentParser]),

    .target(name: "TestSupport", path: "Tests/TestSupport"),

    .testTarget(name: "RosetClientTests", dependencies: ["RosetClient", "TestSupport"]),
    .testTarget(name: "RosetFSTests", dependencies: ["RosetFS", "RosetClient"]),
    .testTarget(name: "RosetFUSETests", dependencies: ["RosetFUSE", "RosetFS", "TestSupport"]),
    .testTarget(name: "MountHelperTests", dependencies: ["MountHelper", "TestSupport"]),
    // Integration tests drive the built binaries (roset-server, mount.roset) as subprocesses.
    .testTarget(name: "IntegrationTests", dependencies: ["RosetClient", "TestSupport"]),
    .testTarget(name: "RosetMetricsTests", dependencies: ["RosetMetrics", metrics]),
]

if withServer {
    products.append(.executable(name: "roset-server", targets: ["RosetServerMain"]))
    dependencies += [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        // Hummingbird resolves (and builds) it already; the S3 backend's calls go through it.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ]
    targets += [
        .target(name: "RosetServer", dependencies: [
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            "RosetMetrics",
            logging,
        ]),
        .executableTarget(name: "RosetServerMain", dependencies: ["RosetServer", "CMalloc", argumentParser, logging]),
        .testTarget(name: "RosetServerTests", dependencies: ["RosetServer", "TestSupport"]),
    ]
}

let package = Package(
    name: "roset-fuse",
    products: products,
    dependencies: dependencies,
    targets: targets,
    // Language mode 5: the FUSE and libcurl layers are synchronous code on C threads guarded by
    // locks; strict Sendable checking would add annotations without adding safety there.
    swiftLanguageModes: [.v5]
)
