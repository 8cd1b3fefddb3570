/*
 * shapes_b.c: the other half of shapes.h. rect_is_square calls rect_area (shapes_a.c)
 * through its stub; shape_mix takes eight parameters of eight different wire types.
 */
#include "shapes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"point", "line", "angle", "triangle", "square",
                                     "pentagon", "hexagon"};

/* A static helper with the same name as one in another file: file-local, no clash. */
static const char *
name_of(int32_t sides)
{
    return sides >= 1 && sides <= 6 ? names[sides] : "polygon";
}

MS_SERVICE(char *, shape_name, (int32_t, sides))
{
    const char *n = name_of(sides);
    size_t len = strlen(n) + 1;
    char *s = malloc(len);
    if (!s) {
        ms_fail(1, "out of memory");
        return NULL;
    }
    memcpy(s, n, len);
    return s;
}

MS_SERVICE(bool, rect_is_square, (struct imp_rect, r))
{
    double w = r.hi.x - r.lo.x;
    double area = rect_area(r); /* a service of shapes_a.c, through its stub */
    return w > 0 && area == w * w;
}

MS_SERVICE(struct imp_label, shape_label, (int32_t, sides))
{
    struct imp_label l = {shape_name(sides), sides};
    return l;
}

MS_SERVICE(uint64_t, shape_mix, (uint8_t, a), (int16_t, b), (uint32_t, c), (int64_t, d),
           (float, e), (double, f), (bool, g), (const char *, h))
{
    /* Every argument contributes, so a mangled one changes the result. */
    return (uint64_t)a + (uint64_t)(int64_t)b + c + (uint64_t)d + (uint64_t)(e * 4) +
           (uint64_t)(f * 8) + (g ? 1000000u : 0u) + strlen(h) * 100000000u;
}
