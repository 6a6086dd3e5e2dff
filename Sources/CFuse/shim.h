/* libfuse3's low-level API for Swift. FUSE_USE_VERSION is fixed here, once, so that every Swift
 * file sees the same struct layouts (fuse_lowlevel_ops, fuse_file_info, fuse_conn_info). */
#ifndef ROSET_CFUSE_SHIM_H
#define ROSET_CFUSE_SHIM_H
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <fuse_opt.h>
#include <sys/xattr.h>
#include <sys/statvfs.h>
#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <stdlib.h>

/* fuse_file_info keeps its flags in C bitfields, which Swift does not import as settable members. */
static inline void roset_fi_set_direct_io(struct fuse_file_info *fi, int v) { fi->direct_io = v ? 1 : 0; }
static inline void roset_fi_set_keep_cache(struct fuse_file_info *fi, int v) { fi->keep_cache = v ? 1 : 0; }
static inline void roset_fi_set_nonseekable(struct fuse_file_info *fi, int v) { fi->nonseekable = v ? 1 : 0; }
static inline void roset_fi_set_cache_readdir(struct fuse_file_info *fi, int v) { fi->cache_readdir = v ? 1 : 0; }
static inline int roset_fi_flush(const struct fuse_file_info *fi) { return fi->flush; }

/* A read reply whose data sit in pipes (read ends, `counts[i]` bytes from each, in order).
 * libfuse splices them into /dev/fuse when the session wants FUSE_CAP_SPLICE_WRITE, so the bytes
 * never enter this process; otherwise, or when a splice fails, it reads them into memory first.
 * Either way exactly those bytes leave the pipes, unless the reply fails before reading them. */
static inline int roset_reply_pipes(fuse_req_t req, const int *fds, const size_t *counts, size_t n) {
    if (n == 0) return fuse_reply_buf(req, NULL, 0);
    struct fuse_bufvec *bv = calloc(1, sizeof(struct fuse_bufvec) + (n - 1) * sizeof(struct fuse_buf));
    if (bv == NULL) return fuse_reply_err(req, ENOMEM);
    bv->count = n;
    for (size_t i = 0; i < n; i++) {
        bv->buf[i].size = counts[i];
        bv->buf[i].flags = FUSE_BUF_IS_FD;
        bv->buf[i].fd = fds[i];
    }
    int res = fuse_reply_data(req, bv, 0);
    free(bv);
    return res;
}

/* The 3.12 loop configuration (max_threads, idle threads) is only declared for FUSE_USE_VERSION
 * >= 312, which would change other declarations. The library exports it as the default version of
 * fuse_session_loop_mt_312; the config is opaque here (only pointers cross), so the v1 struct name
 * the 3.5 headers give `struct fuse_loop_config` does not matter. */
int fuse_session_loop_mt_312(struct fuse_session *se, struct fuse_loop_config *config);

static inline int roset_session_loop_mt(struct fuse_session *se, unsigned max_idle_threads,
                                        unsigned max_threads) {
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    if (config == NULL) return -ENOMEM;
    fuse_loop_cfg_set_clone_fd(config, 0);
    fuse_loop_cfg_set_max_threads(config, max_threads);
    fuse_loop_cfg_set_idle_threads(config, max_idle_threads);
    int res = fuse_session_loop_mt_312(se, config);
    fuse_loop_cfg_destroy(config);
    return res;
}

/* A handler that does nothing, installed WITHOUT SA_RESTART: a signal sent to the loop thread
 * interrupts its sem_wait so that it notices fuse_session_exit (which alone only takes effect
 * when the next request arrives). */
static void roset_interrupt_noop(int sig) { (void)sig; }
static inline int roset_install_interrupt_handler(int sig) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = roset_interrupt_noop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    return sigaction(sig, &sa, NULL);
}

/* fuse_set_log_func's callback receives a va_list; formatting it in C keeps Swift away from it. */
typedef void (*roset_log_sink)(int level, const char *message);
static inline roset_log_sink *roset_log_sink_slot(void) {
    static roset_log_sink slot; /* a function-local static: Swift's importer emits it with the function */
    return &slot;
}
static void roset_fuse_log_bridge(enum fuse_log_level level, const char *fmt, va_list ap) {
    char buffer[1024];
    vsnprintf(buffer, sizeof buffer, fmt, ap);
    roset_log_sink sink = *roset_log_sink_slot();
    if (sink) sink((int)level, buffer);
}
static inline void roset_set_fuse_log_sink(roset_log_sink sink) {
    *roset_log_sink_slot() = sink;
    fuse_set_log_func(roset_fuse_log_bridge);
}

/* renameat2 with flags (RENAME_NOREPLACE/EXCHANGE), for tests; older glibc headers hide it. */
static inline int roset_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                                  unsigned int flags) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}
#endif
