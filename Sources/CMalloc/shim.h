/* glibc's mallopt(3) and its parameters, which Swift's Glibc module does not export (<malloc.h>).
 * Header-only, from glibc itself; both executables tune their allocator with it at start-up. */
#ifndef ROSET_CMALLOC_SHIM_H
#define ROSET_CMALLOC_SHIM_H
#include <malloc.h>
#endif
