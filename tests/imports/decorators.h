/*
 * decorators.h: services of test_imports_decorators.c that other files call: the chain
 * tails that decorators_chain.c implements.
 */
#ifndef IMP_DECORATORS_H
#define IMP_DECORATORS_H

#include <ms/ms.h>

MS_DECLARE(char *, chain_c, (const char *, s))
MS_DECLARE(int32_t, fail_c, (int32_t, x))

#endif /* IMP_DECORATORS_H */
