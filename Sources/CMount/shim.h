/* util-linux libmount, for parsing mount options with mount(8)'s own rules (quoting included),
 * plus the few process calls Swift does not import directly (fork, setns). */
#ifndef ROSET_CMOUNT_SHIM_H
#define ROSET_CMOUNT_SHIM_H
#include <libmount.h>
#include <unistd.h>
#include <syslog.h>

/* Swift marks fork() unavailable; the daemonizer calls it before any thread exists. */
static inline pid_t roset_fork(void) { return fork(); }
/* Enter a mount namespace (mount(8)'s -N). */
/* Declared here rather than through _GNU_SOURCE, which would make this module's libc types
 * differ from the ones the other modules see. 0x00020000 is CLONE_NEWNS. */
extern int setns(int fd, int nstype);
static inline int roset_setns_mount(int fd) { return setns(fd, 0x00020000); }
/* syslog is variadic; the format is fixed to "%s" so a message can never be read as a format. */
static inline void roset_syslog(int priority, const char *message) { syslog(priority, "%s", message); }
#endif
