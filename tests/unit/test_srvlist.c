/* Server lists (--server A,B,...): shape checks and resolution in order, a name's addresses
 * each a server of its own. */
#include "check.h"
#include "common/endpoint.h"
#include "common/srvlist.h"

#include <string.h>

static char err_[512];

static void good(const char *list)
{
    CHECK_MSG(sl_check(list, err_, sizeof err_) == 0, "sl_check(\"%s\"): %s", list, err_);
}

static void bad(const char *list, const char *why)
{
    err_[0] = '\0';
    if (CHECK_MSG(sl_check(list, err_, sizeof err_) < 0, "sl_check(\"%s\") accepted", list))
        CHECK_MSG(strstr(err_, why) != NULL, "sl_check(\"%s\"): \"%s\" lacks \"%s\"", list, err_,
                  why);
}

static void t_check(void)
{
    char many[400] = "";
    good("127.0.0.1:7000");
    good("127.0.0.1:7000,127.0.0.1:7001");
    good(" 127.0.0.1:7000 ,\t[::1]:7001 ");
    good("rv.example:7000,rv2.example:7000"); /* names are not looked up */
    bad("", "empty");
    bad(",", "item 1 is empty");
    bad("127.0.0.1:1,", "item 2 is empty");
    bad(",127.0.0.1:1", "item 1 is empty");
    bad("127.0.0.1:1,,127.0.0.1:2", "item 2 is empty");
    bad("127.0.0.1:1, ,127.0.0.1:2", "item 2 is empty");
    bad("127.0.0.1:1,127.0.0.1:0", "port");
    bad("127.0.0.1:1,127.0.0.1:65536", "port");
    bad("127.0.0.1:1,127.0.0.1", "HOST:PORT");
    bad("127.0.0.1:1,::1:80", "HOST:PORT");
    for (int i = 0; i <= SL_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s127.0.0.1:%d", i ? "," : "",
                 7000 + i);
    bad(many, "more than");
}

static void t_resolve(void)
{
    struct sl_list l;
    char skipped[600], ep[EP_STRLEN];
    CHECK_INT(sl_resolve("127.0.0.1:7000, 127.0.0.2:7001", &l, skipped, sizeof skipped), 2);
    CHECK_INT(l.items, 2);
    CHECK_STR(l.s[0].name, "127.0.0.1:7000");
    CHECK_STR(l.s[1].name, "127.0.0.2:7001");
    CHECK_STR(ep_format((struct sockaddr *)&l.s[1].addr, ep, sizeof ep), "127.0.0.2:7001");
    CHECK_STR(skipped, "");
    /* an item that does not resolve is left out, and said why */
    CHECK_INT(sl_resolve("no-such-host.invalid:1,127.0.0.1:2", &l, skipped, sizeof skipped), 1);
    CHECK_INT(l.items, 2);
    CHECK_STR(l.s[0].name, "127.0.0.1:2");
    CHECK_MSG(strstr(skipped, "no-such-host.invalid") != NULL, "skipped: %s", skipped);
    /* a name: every address, IPv4 first; with several, each named with its address */
    if (CHECK(sl_resolve("localhost:7000", &l, skipped, sizeof skipped) >= 1)) {
        CHECK_INT(l.items, 1);
        if (l.n == 1)
            CHECK_STR(l.s[0].name, "localhost:7000");
        else
            CHECK_MSG(strstr(l.s[0].name, "localhost:7000 (") == l.s[0].name &&
                          l.s[0].addr.ss_family == AF_INET,
                      "first of %d: %s", l.n, l.s[0].name);
    }
}

static void t_join(void)
{
    char s[16] = "";
    sl_join(s, sizeof s, "a");
    sl_join(s, sizeof s, "b");
    CHECK_STR(s, "a; b");
    sl_join(s, sizeof s, "a long reason that is cut");
    CHECK_INT((int)strlen(s), 15);
}

CHECK_MAIN(TEST(t_check), TEST(t_resolve), TEST(t_join))
