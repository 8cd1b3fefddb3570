/*
 * jansson.h: a decoy. test_imports_no_jansson puts this directory first on the include path,
 * so that a program that includes <ms/ms.h> and not <jansson.h> fails to compile if ms.h
 * includes jansson's header again.
 */
#error "<ms/ms.h> included <jansson.h>: a program that uses no json_t must compile without it"
