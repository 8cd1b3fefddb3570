/*
 * shapes.h: a header of several MS_DECLAREs and MS_STRUCTs, the way a user shares services
 * between translation units and with C++. Included by shapes_a.c and shapes_b.c (which
 * implement the services, each calling the other's through the stubs), by the two test
 * translation units of test_imports_multi_tu, and by cpp_caller.cpp (compiled as C++11).
 * Including it from many files must define nothing that clashes at link time.
 */
#ifndef IMP_SHAPES_H
#define IMP_SHAPES_H

#include <ms/ms.h>

MS_STRUCT(imp_point, (double, x), (double, y))
MS_STRUCT(imp_rect, (struct imp_point, lo), (struct imp_point, hi))
/* A struct with an owned field: the result's `text` is the caller's to free. */
MS_STRUCT(imp_label, (char *, text), (int32_t, sides))

/* shapes_a.c */
MS_DECLARE(double, rect_area, (struct imp_rect, r))
MS_DECLARE(struct imp_point, point_mid, (struct imp_point, a), (struct imp_point, b))
MS_DECLARE(int64_t, shape_count)
MS_DECLARE(void, shape_reset)

/* shapes_b.c */
MS_DECLARE(char *, shape_name, (int32_t, sides))
MS_DECLARE(bool, rect_is_square, (struct imp_rect, r))
MS_DECLARE(struct imp_label, shape_label, (int32_t, sides))
MS_DECLARE(uint64_t, shape_mix, (uint8_t, a), (int16_t, b), (uint32_t, c), (int64_t, d),
           (float, e), (double, f), (bool, g), (const char *, h))

#endif /* IMP_SHAPES_H */
