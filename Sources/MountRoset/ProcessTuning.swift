// Settings of the daemon process itself, made once before any thread of ours exists (so every
// thread gets them): the allocator's arenas and mmap threshold, and the open-file limit.
import CMalloc
#if canImport(Glibc)
import Glibc
#endif

enum ProcessTuning {
    /// RLIMIT_NOFILE, whose Glibc type (`__rlimit_resource`) differs between C library versions.
    static let openFilesLimit = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)

    static func apply() {
        // glibc keeps freed memory in per-thread arenas (up to 8 per core):
        // - four arenas: with libfuse's worker threads each allocating ~1 MiB read replies, the arenas
        //   alone held ~17 MiB beyond cache_size_mb while reading one large file (measured: VmHWM
        //   81 -> 69 MiB, cache_size_mb=16);
        // - a fixed 128 KiB mmap threshold: glibc raises it after each large free, so 1 MiB buffers
        //   (reads served by copy, spool reads of pending files) came from the arenas and stayed
        //   there; 4 parallel readers held 26-30 MiB more (VmHWM 317-321 -> 291 MiB, cache 256 MiB).
        _ = mallopt(M_ARENA_MAX, 4)
        _ = mallopt(M_MMAP_THRESHOLD, 128 * 1024)
        // Sequential readers hold their read-ahead in pipes, two descriptors per MiB: the soft limit
        // of open files (often 1,024) goes up to the hard one.
        var files = rlimit()
        if getrlimit(openFilesLimit, &files) == 0, files.rlim_cur < files.rlim_max {
            files.rlim_cur = files.rlim_max
            _ = setrlimit(openFilesLimit, &files)
        }
    }
}
