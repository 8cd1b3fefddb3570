/*
 * multi_tu_other.c: a second translation unit of test_imports_multi_tu that includes
 * shapes.h too (so its MS_STRUCT codecs and MS_DECLARE prototypes appear in several object
 * files) and calls the services; it uses imp_label but none of the other structs.
 */
#include "shapes.h"

#include <stdlib.h>
#include <string.h>

/* 1 when shape_label(4) gives "square" with 4 sides and the field can be freed. */
int
other_tu_label_ok(void)
{
    struct imp_label l = shape_label(4);
    int ok = l.text && strcmp(l.text, "square") == 0 && l.sides == 4;
    imp_label_free_fields(&l);
    return ok && l.text == NULL;
}

/* The same call in _try form, from this file. */
ms_status
other_tu_name_try(char **out, int32_t sides)
{
    return shape_name_try(out, sides);
}
