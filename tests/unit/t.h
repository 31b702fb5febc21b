/* t.h — a tiny unit-test harness: CHECK records a failure and goes on,
 * TEST_MAIN runs each test and prints "N passed, N failed". */
#ifndef AIRLOCK_T_H
#define AIRLOCK_T_H
#include <stdio.h>
#include <string.h>

static int t_checks_failed;
static int t_passed, t_failed;

#define CHECK(cond) do { \
    if (!(cond)) { \
        t_checks_failed++; \
        fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
    } \
} while (0)

#define CHECK_STR(a, b) do { \
    const char *t_a_ = (a), *t_b_ = (b); \
    if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0) { \
        t_checks_failed++; \
        fprintf(stderr, "  %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, \
                t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)"); \
    } \
} while (0)

#define RUN(fn) do { \
    int t_before_ = t_checks_failed; \
    fn(); \
    if (t_checks_failed == t_before_) { t_passed++; } \
    else { t_failed++; fprintf(stderr, "FAIL %s\n", #fn); } \
} while (0)

#define TEST_DONE() do { \
    printf("%d passed, %d failed\n", t_passed, t_failed); \
    return t_failed ? 1 : 0; \
} while (0)

#endif
