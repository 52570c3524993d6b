/* A tiny test runner: CHECK macros record file:line of each failure, a table of test functions,
 * exit status 1 when anything failed. One test program per .c file, so the state is static.
 *
 *   static void t_something(void) { CHECK(1 + 1 == 2); CHECK_INT(f(), 3); }
 *   CHECK_MAIN(TEST(t_something), TEST(t_other))
 *
 * Running the program with test names as arguments runs only those. */
#ifndef TP_CHECK_H
#define TP_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct check_test {
    const char *name;
    void (*fn)(void);
};

static int check_failures_;   /* failed checks, all tests */
static int check_test_fails_; /* failed checks in the running test */
static const char *check_current_ = "?";

__attribute__((unused)) static int check_fail_(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#include <stdarg.h>
__attribute__((unused)) static int check_fail_(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: FAIL in %s: ", file, line, check_current_);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    check_failures_++;
    check_test_fails_++;
    return 0;
}

/* Each macro evaluates to 1 when the check passed, 0 when it failed (so a test can bail out
 * with `if (!CHECK(p)) return;`). */
#define CHECK(cond) ((cond) ? 1 : check_fail_(__FILE__, __LINE__, "CHECK(%s)", #cond))

#define CHECK_INT(a, b)                                                                            \
    __extension__({                                                                                \
        long long ca_ = (long long)(a), cb_ = (long long)(b);                                      \
        ca_ == cb_ ? 1                                                                             \
                   : check_fail_(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, ca_, cb_);  \
    })

#define CHECK_STR(a, b)                                                                            \
    __extension__({                                                                                \
        const char *ca_ = (a), *cb_ = (b);                                                         \
        (ca_ && cb_ && strcmp(ca_, cb_) == 0)                                                      \
            ? 1                                                                                    \
            : check_fail_(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                \
                          ca_ ? ca_ : "(null)", cb_ ? cb_ : "(null)");                             \
    })

/* Like CHECK, with a printf-style explanation added to the failure line. */
#define CHECK_MSG(cond, ...) ((cond) ? 1 : check_fail_(__FILE__, __LINE__, __VA_ARGS__))

#define TEST(fn)                                                                                   \
    {                                                                                              \
#fn, fn                                                                                    \
    }

__attribute__((unused)) static int check_run_(const struct check_test *t, size_t n, int argc,
                                              char **argv)
{
    int ran = 0, failed_tests = 0;
    setvbuf(stdout, NULL, _IONBF, 0);
    for (size_t i = 0; i < n; i++) {
        int wanted = argc <= 1;
        for (int a = 1; a < argc && !wanted; a++)
            wanted = strcmp(argv[a], t[i].name) == 0;
        if (!wanted)
            continue;
        check_current_ = t[i].name;
        check_test_fails_ = 0;
        t[i].fn();
        ran++;
        if (check_test_fails_)
            failed_tests++;
        printf("%s %s\n", check_test_fails_ ? "FAIL" : "ok  ", t[i].name);
    }
    if (ran == 0) {
        fprintf(stderr, "no test matched\n");
        return 1;
    }
    printf("%d test(s), %d failed, %d failed check(s)\n", ran, failed_tests, check_failures_);
    return check_failures_ > 0;
}

#define CHECK_MAIN(...)                                                                            \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static const struct check_test tests_[] = {__VA_ARGS__};                                   \
        return check_run_(tests_, sizeof tests_ / sizeof tests_[0], argc, argv);                   \
    }

#endif
