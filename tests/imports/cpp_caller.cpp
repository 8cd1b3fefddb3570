// cpp_caller.cpp: a C++11 program that includes shapes.h (MS_DECLAREs and MS_STRUCTs) and
// calls services implemented in C (shapes_a.c, shapes_b.c, linked as a C static library).
// Built with -Wall -Wextra -Wpedantic -Werror: the header must compile cleanly as C++ and
// give the stubs C linkage. In C++ an MS_STRUCT is a plain struct (no codec, no
// *_free_fields), so owned fields are freed by hand with std::free.
//
// Usage (ctest): cpp_caller [--ms-mode=MODE] [ARG]; with ARG given, checks that ms_init
// removed the --ms-* option and kept ARG.
#include "shapes.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

static int failures;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);      \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

namespace {

// A C++ wrapper a user might write: RAII over a char * result.
struct owned_string {
    char *p;
    explicit owned_string(char *s) : p(s) {}
    ~owned_string() { std::free(p); }
    owned_string(const owned_string &) = delete;
    owned_string &operator=(const owned_string &) = delete;
    std::string str() const { return p ? std::string(p) : std::string(); }
};

void
test_values()
{
    shape_reset();
    imp_rect r = {{0, 0}, {3, 3}}; // no `struct` needed in C++
    CHECK(rect_area(r) == 9.0);
    CHECK(rect_is_square(r));
    imp_point m = point_mid(r.lo, r.hi);
    CHECK(m.x == 1.5 && m.y == 1.5);
    CHECK(shape_count() == 3);
    CHECK(shape_mix(200, -300, 4000000000u, -5, 1.25f, 2.5, true, "abcd") ==
          UINT64_C(4400999920));
}

void
test_strings()
{
    owned_string s(shape_name(5));
    CHECK(s.str() == "pentagon");
    char *t = nullptr;
    CHECK(shape_name_try(&t, 99) == MS_OK);
    CHECK(t && std::strcmp(t, "polygon") == 0);
    std::free(t);
    imp_label l = shape_label(3);
    CHECK(l.text && std::string(l.text) == "triangle" && l.sides == 3);
    std::free(l.text);
}

void
test_try_and_status()
{
    double area = -1;
    imp_rect r = {{0, 0}, {2, 5}};
    CHECK(rect_area_try(&area, r) == MS_OK);
    CHECK(area == 10.0);
    CHECK(shape_reset_try() == MS_OK);
    int64_t n = -1;
    CHECK(shape_count_try(&n) == MS_OK && n == 0);
    CHECK(std::string(ms_status_name(MS_EAPP)) == "MS_EAPP");
}

} // namespace

int
main(int argc, char **argv)
{
    ms_status st = ms_init(&argc, &argv);
    if (st != MS_OK) {
        std::fprintf(stderr, "ms_init: %s: %s\n", ms_strerror(st), ms_last_error());
        return 1;
    }
    // With arguments, ctest passes "--ms-mode=zero-checked keep": ms_init takes the first.
    if (argc > 1) {
        CHECK(argc == 2 && std::string(argv[1]) == "keep" && argv[2] == nullptr);
        CHECK(ms_current_mode() == MS_MODE_ZERO_CHECKED);
    }
    test_values();
    test_strings();
    test_try_and_status();
    ms_shutdown();
    std::printf("%s: %d failure(s) in mode %s\n", argv[0], failures,
                ms_mode_name(ms_current_mode()));
    return failures ? 1 : 0;
}
