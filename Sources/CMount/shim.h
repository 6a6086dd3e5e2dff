/* util-linux libmount, for parsing mount options with mount(8)'s own rules (quoting included). */
#ifndef ROSET_CMOUNT_SHIM_H
#define ROSET_CMOUNT_SHIM_H
#include <libmount.h>
#endif
