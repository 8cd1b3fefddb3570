/*
 * libsvc.h: services that live in libraries. lib_static_used.c is a member of a static
 * library (imp_static) that the program references; lib_shared.c is a shared library
 * (imp_shared) linked at build time. lib_static_unref.c is a member of imp_static that
 * nothing references, so a normal link leaves it (and its service) out of the program.
 */
#ifndef IMP_LIBSVC_H
#define IMP_LIBSVC_H

#include <ms/ms.h>

MS_DECLARE(int64_t, static_twice, (int64_t, x))
MS_DECLARE(char *, static_tag, (const char *, s))
MS_DECLARE(int64_t, shared_thrice, (int64_t, x))
/* Calls main_plus1, a service of the program that loads the library. */
MS_DECLARE(int64_t, shared_calls_main, (int64_t, x))

#endif /* IMP_LIBSVC_H */
