/*
 * ms_pp.h: preprocessor machinery behind MS_DECLARE, MS_SERVICE, MS_CLIENT and MS_STRUCT.
 *
 * Private: everything here is named MS__ and may change without notice. Include <ms/ms.h>.
 *
 * Design notes
 * - Every user macro takes all its arguments as `...`, so that a service with no parameters
 *   (`MS_DECLARE(int64_t, now_ms)`) never leaves an empty variadic list, which -Wpedantic
 *   reports on both gcc and clang.
 * - A parameter is a parenthesised pair `(type, name)`; MS__PT and MS__PN take it apart.
 * - Probes: `MS__CAT(MS__PROBE_VOID_, T)` expands to `~, 1` only when T is `void`, and
 *   `MS__CAT(MS__PROBE_STRUCT_, T)` to `~, 1` only when T starts with `struct`; MS__SECOND
 *   then picks 1 or the default 0.
 */
#ifndef MS_PP_H
#define MS_PP_H

#define MS__CAT(a, b) MS__CAT_(a, b)
#define MS__CAT_(a, b) a##b
#define MS__STR(x) MS__STR_(x)
#define MS__STR_(x) #x
#define MS__EXPAND(...) __VA_ARGS__
#define MS__EAT(...)
/* m(args) with the arguments macro-expanded first, so that m may paste them with ##. */
#define MS__APPLY(m, ...) m(__VA_ARGS__)
#define MS__SECOND(...) MS__SECOND_(__VA_ARGS__, ~, ~)
#define MS__SECOND_(a, b, ...) b
#define MS__IF(c) MS__CAT(MS__IF_, c)
#define MS__IF_0(t, f) f
#define MS__IF_1(t, f) t

/* Result type and service name are always the first two arguments. */
#define MS__RT(...) MS__RT_(__VA_ARGS__, ~)
#define MS__RT_(r, ...) r
#define MS__NAME(...) MS__NAME_(__VA_ARGS__, ~)
#define MS__NAME_(r, n, ...) n

/* Number of parameters: arguments minus the two (result, name); 0 to 8. */
#define MS__NP(...) MS__NP_(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0, ~, ~)
#define MS__NP_(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, n, ...) n

/* A parameter (T, name). */
#define MS__PT(p) MS__PT_ p
#define MS__PT_(t, n) t
#define MS__PN(p) MS__PN_ p
#define MS__PN_(t, n) n

#define MS__PROBE_VOID_void ~, 1
#define MS__IS_VOID(t) MS__SECOND(MS__CAT(MS__PROBE_VOID_, t), 0)
#define MS__PROBE_STRUCT_struct ~, 1,
#define MS__IS_STRUCT(t) MS__SECOND(MS__CAT(MS__PROBE_STRUCT_, t), 0)
#define MS__STRUCT_TAG_struct
#define MS__STRUCT_TAG(t) MS__CAT(MS__STRUCT_TAG_, t)

/*
 * MS__MAP(F, x, r, n, p1, ...): F(x, p) for each parameter p (skipping result r and name n),
 * pasted one after another; F supplies its own separators.
 */
#define MS__MAP(F, x, ...) MS__CAT(MS__MAP_, MS__NP(__VA_ARGS__))(F, x, __VA_ARGS__)
#define MS__MAP_0(F, x, r, n)
#define MS__MAP_1(F, x, r, n, a) F(x, a)
#define MS__MAP_2(F, x, r, n, a, b) F(x, a) F(x, b)
#define MS__MAP_3(F, x, r, n, a, b, c) F(x, a) F(x, b) F(x, c)
#define MS__MAP_4(F, x, r, n, a, b, c, d) F(x, a) F(x, b) F(x, c) F(x, d)
#define MS__MAP_5(F, x, r, n, a, b, c, d, e) F(x, a) F(x, b) F(x, c) F(x, d) F(x, e)
#define MS__MAP_6(F, x, r, n, a, b, c, d, e, f) MS__MAP_5(F, x, r, n, a, b, c, d, e) F(x, f)
#define MS__MAP_7(F, x, r, n, a, b, c, d, e, f, g) MS__MAP_6(F, x, r, n, a, b, c, d, e, f) F(x, g)
#define MS__MAP_8(F, x, r, n, a, b, c, d, e, f, g, h)                                              \
    MS__MAP_7(F, x, r, n, a, b, c, d, e, f, g) F(x, h)

/* Comma-separated forms: "T1 a, T2 b" (or "void") and "a, b" (or nothing). */
#define MS__PLIST(...) MS__CAT(MS__PLIST_, MS__NP(__VA_ARGS__))(__VA_ARGS__)
#define MS__PLIST_0(r, n) void
#define MS__PLIST_1(r, n, a) MS__PD(a)
#define MS__PLIST_2(r, n, a, b) MS__PD(a), MS__PD(b)
#define MS__PLIST_3(r, n, a, b, c) MS__PD(a), MS__PD(b), MS__PD(c)
#define MS__PLIST_4(r, n, a, b, c, d) MS__PLIST_3(r, n, a, b, c), MS__PD(d)
#define MS__PLIST_5(r, n, a, b, c, d, e) MS__PLIST_4(r, n, a, b, c, d), MS__PD(e)
#define MS__PLIST_6(r, n, a, b, c, d, e, f) MS__PLIST_5(r, n, a, b, c, d, e), MS__PD(f)
#define MS__PLIST_7(r, n, a, b, c, d, e, f, g) MS__PLIST_6(r, n, a, b, c, d, e, f), MS__PD(g)
#define MS__PLIST_8(r, n, a, b, c, d, e, f, g, h)                                                  \
    MS__PLIST_7(r, n, a, b, c, d, e, f, g), MS__PD(h)
#define MS__PD(p) MS__PT(p) MS__PN(p)

/* ", T1 a, T2 b": the parameters after a leading one (nothing when there are none). */
#define MS__PLIST_AFTER(...) MS__MAP(MS__PD_AFTER, ~, __VA_ARGS__)
#define MS__PD_AFTER(x, p) , MS__PD(p)

/* "a, b": the names, comma-separated, for calling the implementation. */
#define MS__NLIST(...) MS__CAT(MS__NLIST_, MS__NP(__VA_ARGS__))(__VA_ARGS__)
#define MS__NLIST_0(r, n)
#define MS__NLIST_1(r, n, a) MS__PN(a)
#define MS__NLIST_2(r, n, a, b) MS__PN(a), MS__PN(b)
#define MS__NLIST_3(r, n, a, b, c) MS__PN(a), MS__PN(b), MS__PN(c)
#define MS__NLIST_4(r, n, a, b, c, d) MS__NLIST_3(r, n, a, b, c), MS__PN(d)
#define MS__NLIST_5(r, n, a, b, c, d, e) MS__NLIST_4(r, n, a, b, c, d), MS__PN(e)
#define MS__NLIST_6(r, n, a, b, c, d, e, f) MS__NLIST_5(r, n, a, b, c, d, e), MS__PN(f)
#define MS__NLIST_7(r, n, a, b, c, d, e, f, g) MS__NLIST_6(r, n, a, b, c, d, e, f), MS__PN(g)
#define MS__NLIST_8(r, n, a, b, c, d, e, f, g, h)                                                  \
    MS__NLIST_7(r, n, a, b, c, d, e, f, g), MS__PN(h)

/* "A->a, A->b": the members of the argument struct pointed to by x. */
#define MS__ALIST(x, ...) MS__CAT(MS__ALIST_, MS__NP(__VA_ARGS__))(x, __VA_ARGS__)
#define MS__ALIST_0(x, r, n)
#define MS__ALIST_1(x, r, n, a) x->MS__PN(a)
#define MS__ALIST_2(x, r, n, a, b) x->MS__PN(a), x->MS__PN(b)
#define MS__ALIST_3(x, r, n, a, b, c) MS__ALIST_2(x, r, n, a, b), x->MS__PN(c)
#define MS__ALIST_4(x, r, n, a, b, c, d) MS__ALIST_3(x, r, n, a, b, c), x->MS__PN(d)
#define MS__ALIST_5(x, r, n, a, b, c, d, e) MS__ALIST_4(x, r, n, a, b, c, d), x->MS__PN(e)
#define MS__ALIST_6(x, r, n, a, b, c, d, e, f) MS__ALIST_5(x, r, n, a, b, c, d, e), x->MS__PN(f)
#define MS__ALIST_7(x, r, n, a, b, c, d, e, f, g)                                                  \
    MS__ALIST_6(x, r, n, a, b, c, d, e, f), x->MS__PN(g)
#define MS__ALIST_8(x, r, n, a, b, c, d, e, f, g, h)                                               \
    MS__ALIST_7(x, r, n, a, b, c, d, e, f, g), x->MS__PN(h)

/* MS__FMAP(F, x, f1, ...): F(x, f) for each of 1 to 16 struct fields. */
#define MS__NF(...) MS__NF_(__VA_ARGS__, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, ~)
#define MS__NF_(a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12,a13,a14,a15,a16, n, ...) n
#define MS__FMAP(F, x, ...) MS__CAT(MS__FMAP_, MS__NF(__VA_ARGS__))(F, x, __VA_ARGS__)
#define MS__FMAP_1(F, x, a) F(x, a)
#define MS__FMAP_2(F, x, a1, a2) MS__FMAP_1(F, x, a1) F(x, a2)
#define MS__FMAP_3(F, x, a1, a2, a3) MS__FMAP_2(F, x, a1, a2) F(x, a3)
#define MS__FMAP_4(F, x, a1, a2, a3, a4) MS__FMAP_3(F, x, a1, a2, a3) F(x, a4)
#define MS__FMAP_5(F, x, a1, a2, a3, a4, a5) MS__FMAP_4(F, x, a1, a2, a3, a4) F(x, a5)
#define MS__FMAP_6(F, x, a1, a2, a3, a4, a5, a6) MS__FMAP_5(F, x, a1, a2, a3, a4, a5) F(x, a6)
#define MS__FMAP_7(F, x, a1, a2, a3, a4, a5, a6, a7) MS__FMAP_6(F, x, a1, a2, a3, a4, a5, a6) F(x, a7)
#define MS__FMAP_8(F, x, a1, a2, a3, a4, a5, a6, a7, a8) MS__FMAP_7(F, x, a1, a2, a3, a4, a5, a6, a7) F(x, a8)
#define MS__FMAP_9(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9) MS__FMAP_8(F, x, a1, a2, a3, a4, a5, a6, a7, a8) F(x, a9)
#define MS__FMAP_10(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10) MS__FMAP_9(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9) F(x, a10)
#define MS__FMAP_11(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11) MS__FMAP_10(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10) F(x, a11)
#define MS__FMAP_12(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12) MS__FMAP_11(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11) F(x, a12)
#define MS__FMAP_13(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13) MS__FMAP_12(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12) F(x, a13)
#define MS__FMAP_14(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14) MS__FMAP_13(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13) F(x, a14)
#define MS__FMAP_15(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15) MS__FMAP_14(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14) F(x, a15)
#define MS__FMAP_16(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16) MS__FMAP_15(F, x, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15) F(x, a16)

#endif /* MS_PP_H */
