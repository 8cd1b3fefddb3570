/*
 * shapes_a.c: half of the services declared in shapes.h. Each body calls services of
 * shapes_b.c through their stubs, so the two files depend on each other only through the
 * header: the calls are direct in zero mode and go through the codec in zero-checked mode.
 */
#include "shapes.h"

/* Calls of any shape service in this file, read through shape_count(). */
static int64_t calls;

MS_SERVICE(double, rect_area, (struct imp_rect, r))
{
    calls++;
    double w = r.hi.x - r.lo.x;
    double h = r.hi.y - r.lo.y;
    return w * h;
}
MS_OPTIONS(rect_area, .idempotent = true)

MS_SERVICE(struct imp_point, point_mid, (struct imp_point, a), (struct imp_point, b))
{
    calls++;
    struct imp_point m = {(a.x + b.x) / 2, (a.y + b.y) / 2};
    return m;
}

MS_SERVICE(int64_t, shape_count) { return calls; }

MS_SERVICE(void, shape_reset) { calls = 0; }
