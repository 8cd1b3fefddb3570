/*
 * lib_static_unref.c: a service in a static-library member that no code references. The
 * linker only takes archive members that resolve an undefined symbol, so a plain link leaves
 * this file out and static_unref is not registered: a program would not be able to serve it
 * as an instance. Linking the library whole (--whole-archive, CMake's
 * $<LINK_LIBRARY:WHOLE_ARCHIVE,...>) keeps it; test_imports_link checks both.
 */
#include <ms/ms.h>

MS_SERVICE(int32_t, static_unref) { return 11; }
