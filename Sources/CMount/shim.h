/* util-linux libmount, for parsing mount options with mount(8)'s own rules (quoting included),
 * plus the few process calls Swift does not import directly (fork, setns). */
#ifndef ROSET_CMOUNT_SHIM_H
#define ROSET_CMOUNT_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <libmount.h>
#include <sched.h>
#include <unistd.h>
#include <syslog.h>

/* Swift marks fork() unavailable; the daemonizer calls it before any thread exists. */
static inline pid_t roset_fork(void) { return fork(); }
/* Enter a mount namespace (mount(8)'s -N). */
static inline int roset_setns_mount(int fd) { return setns(fd, CLONE_NEWNS); }
/* syslog is variadic; the format is fixed to "%s" so a message can never be read as a format. */
static inline void roset_syslog(int priority, const char *message) { syslog(priority, "%s", message); }
#endif
