/* common/bytes.c: byte counts from the command line (--max-bytes, --relay-bytes, --relay-rate). */
#include <stdint.h>

#include "check.h"
#include "common/bytes.h"

static uint64_t got;

static int parse(const char *s, const char *units)
{
    got = 7;
    return bytes_parse(s, units, &got);
}

static void t_values(void)
{
    CHECK(parse("0", "KMG") == 0 && got == 0);
    CHECK(parse("1234", "KMG") == 0 && got == 1234);
    CHECK(parse("1K", "KMG") == 0 && got == 1024);
    CHECK(parse("3m", "KMG") == 0 && got == 3ULL << 20);
    CHECK(parse("1G", "KMG") == 0 && got == 1ULL << 30);
    CHECK(parse("2T", "KMGT") == 0 && got == 2ULL << 40);
    CHECK(parse("18446744073709551615", "KMG") == 0 && got == UINT64_MAX);
    CHECK(parse("16777215T", "KMGT") == 0 && got == 16777215ULL << 40);
}

static void t_refused(void)
{
    static const char *const bad[] = {"", "-1", "+1", " 1", "1 ", "1 K", "K", "1KB", "1X",
                                      "1T", "0x10", "18446744073709551616", "16777216T",
                                      "17179869184G"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(parse(bad[i], "KMG") == -1);
        CHECK(got == 7); /* untouched on a refusal */
    }
    CHECK(parse("16777216T", "KMGT") == -1);
}

CHECK_MAIN(TEST(t_values), TEST(t_refused))
