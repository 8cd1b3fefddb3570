// json_user.cpp: in C++ too, ms.h's declaration of json_t and jansson's definition agree,
// whichever header comes first (JSON_USER_JANSSON_FIRST=1). test_imports_json_user_cpp*
// compile it as C++11 with -Wall -Wextra -Wpedantic -Werror.
#if JSON_USER_JANSSON_FIRST
#include <jansson.h>
#endif

#include <ms/ms.h>

#if !JSON_USER_JANSSON_FIRST
#include <jansson.h>
#endif

MS_DECLARE(json_t *, ju_wrap, (json_t *, j), (const char *, key))

int
main()
{
    json_t *j = json_integer(7);
    // The stub's type, without odr-using it (its service is not linked into this program).
    json_t *(*wrap)(json_t *, const char *) = nullptr;
    static_assert(sizeof(decltype(&ju_wrap)) == sizeof wrap, "ju_wrap's type");
    int ok = wrap == nullptr && json_integer_value(j) == 7;
    json_decref(j);
    return ok ? 0 : 1;
}
