/*
 * lib_shared.c: services in a shared library (imp_shared) linked at build time. Their
 * constructors run when the dynamic loader maps the library, before main(). It also calls
 * back a service of the program through an MS_CLIENT stub, found in the registry (the one
 * registry of the one libms.so both use).
 */
#include "libsvc.h"

MS_CLIENT(int64_t, main_plus1, (int64_t, x))

MS_SERVICE(int64_t, shared_thrice, (int64_t, x)) { return 3 * x; }

MS_SERVICE(int64_t, shared_calls_main, (int64_t, x)) { return 10 * main_plus1(x); }
