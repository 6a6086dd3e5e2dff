/* Linux pipe and file calls that Swift's Glibc module does not export: splice(2), F_SETPIPE_SZ
 * and sync_file_range(2) are _GNU_SOURCE declarations, and fcntl/ioctl are variadic. Header-only,
 * from glibc itself. */
#ifndef ROSET_CPIPES_SHIM_H
#define ROSET_CPIPES_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Moves up to `count` bytes from `from` to `to` (one of them a pipe) without a copy through user
 * memory, never blocking on either: -1 with EAGAIN when nothing can move now. */
static inline long roset_splice_nonblocking(int from, int to, size_t count) {
    return (long)splice(from, NULL, to, NULL, count, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
}

/* Sets a pipe's capacity (F_SETPIPE_SZ); over /proc/sys/fs/pipe-max-size needs CAP_SYS_RESOURCE. */
static inline int roset_set_pipe_size(int fd, int bytes) { return fcntl(fd, F_SETPIPE_SZ, bytes); }

/* Bytes waiting in a pipe (FIONREAD), or -1. */
static inline int roset_pipe_bytes(int fd) {
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

/* Starts write-back of [offset, offset + count) of a file and returns without waiting for it
 * (SYNC_FILE_RANGE_WRITE); durability still takes an fsync. */
static inline int roset_start_writeback(int fd, long long offset, long long count) {
    return sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE);
}
#endif
