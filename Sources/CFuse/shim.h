/* libfuse3's low-level API for Swift. FUSE_USE_VERSION is fixed here, once, so that every Swift
 * file sees the same struct layouts (fuse_lowlevel_ops, fuse_file_info, fuse_conn_info). */
#ifndef ROSET_CFUSE_SHIM_H
#define ROSET_CFUSE_SHIM_H
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <fuse_opt.h>
#include <sys/xattr.h>
#include <sys/statvfs.h>

/* fuse_file_info keeps its flags in C bitfields, which Swift does not import as settable members. */
static inline void roset_fi_set_direct_io(struct fuse_file_info *fi, int v) { fi->direct_io = v ? 1 : 0; }
static inline void roset_fi_set_keep_cache(struct fuse_file_info *fi, int v) { fi->keep_cache = v ? 1 : 0; }
static inline void roset_fi_set_nonseekable(struct fuse_file_info *fi, int v) { fi->nonseekable = v ? 1 : 0; }
static inline void roset_fi_set_cache_readdir(struct fuse_file_info *fi, int v) { fi->cache_readdir = v ? 1 : 0; }
static inline int roset_fi_flush(const struct fuse_file_info *fi) { return fi->flush; }
#endif
