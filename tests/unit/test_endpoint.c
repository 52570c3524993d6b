/* Endpoints: strict wire parsing, canonical formatting, command-line resolving, comparison and
 * IPv4-mapped unmapping. */
#include "check.h"
#include "common/endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static char err_[256];

/* ep_parse then ep_format must give want (the canonical form). */
static void parse_fmt(const char *in, const char *want, int family, int port)
{
    struct sockaddr_storage ss;
    char buf[EP_STRLEN];
    err_[0] = '\0';
    if (!CHECK_MSG(ep_parse(in, &ss, err_, sizeof err_) == 0, "ep_parse(%s): %s", in, err_))
        return;
    CHECK_MSG(ss.ss_family == family, "ep_parse(%s): family %d", in, ss.ss_family);
    CHECK_MSG(ep_port((struct sockaddr *)&ss) == port, "ep_parse(%s): port %d", in,
              ep_port((struct sockaddr *)&ss));
    CHECK_STR(ep_format((struct sockaddr *)&ss, buf, sizeof buf), want);
}

static void t_parse_good(void)
{
    parse_fmt("1.2.3.4:5", "1.2.3.4:5", AF_INET, 5);
    parse_fmt("0.0.0.0:1", "0.0.0.0:1", AF_INET, 1);
    parse_fmt("255.255.255.255:65535", "255.255.255.255:65535", AF_INET, 65535);
    parse_fmt("127.0.0.1:7000", "127.0.0.1:7000", AF_INET, 7000);
    parse_fmt("[::1]:7000", "[::1]:7000", AF_INET6, 7000);
    parse_fmt("[::]:1", "[::]:1", AF_INET6, 1);
    parse_fmt("[2001:DB8:0:0:0:0:0:1]:80", "[2001:db8::1]:80", AF_INET6, 80);
    parse_fmt("[fe80::1]:65535", "[fe80::1]:65535", AF_INET6, 65535);
    parse_fmt("[::ffff:10.0.0.1]:9", "[::ffff:10.0.0.1]:9", AF_INET6, 9);
    parse_fmt("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
              "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", AF_INET6, 65535);
    /* leading zeros in the port are tolerated and canonicalised away */
    parse_fmt("1.2.3.4:00080", "1.2.3.4:80", AF_INET, 80);
}

static void t_parse_bad(void)
{
    const char *bad[] = {"",
                         ":",
                         ":80",
                         "1.2.3.4",
                         "1.2.3.4:",
                         "1.2.3.4:0",
                         "1.2.3.4:65536",
                         "1.2.3.4:100000",
                         "1.2.3.4:000080",
                         "1.2.3.4:-1",
                         "1.2.3.4:+1",
                         "1.2.3.4: 1",
                         "1.2.3.4:1 ",
                         "1.2.3.4:0x50",
                         "1.2.3.4:8a",
                         "1.2.3:80",
                         "1.2.3.4.5:80",
                         "256.0.0.1:80",
                         " 1.2.3.4:80",
                         "localhost:80",
                         "example.com:443",
                         "::1:80",
                         "2001:db8::1:80",
                         "[::1]",
                         "[::1]:",
                         "[::1]:0",
                         "[::1]:65536",
                         "[::1]80",
                         "[::1:80",
                         "::1]:80",
                         "[]:80",
                         "[fe80::1%eth0]:80",
                         "[fe80::1%1]:80",
                         "[1.2.3.4]:80",
                         "[localhost]:80",
                         "[:::1]:80",
                         "[0123456789012345678901234567890123456789012345678901234567890]:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sockaddr_storage ss;
        err_[0] = '\0';
        CHECK_MSG(ep_parse(bad[i], &ss, err_, sizeof err_) == -1, "ep_parse(\"%s\") accepted",
                  bad[i]);
        CHECK_MSG(err_[0] != '\0', "ep_parse(\"%s\"): no reason", bad[i]);
    }
}

static void t_format(void)
{
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr_storage ss;
    char buf[EP_STRLEN], tiny[6];
    memset(&a4, 0, sizeof a4);
    a4.sin_family = AF_INET;
    a4.sin_port = htons(40000);
    inet_pton(AF_INET, "203.0.113.10", &a4.sin_addr);
    CHECK_STR(ep_format((struct sockaddr *)&a4, buf, sizeof buf), "203.0.113.10:40000");
    memset(&a6, 0, sizeof a6);
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(1);
    inet_pton(AF_INET6, "2001:db8:0:1::5", &a6.sin6_addr);
    CHECK_STR(ep_format((struct sockaddr *)&a6, buf, sizeof buf), "[2001:db8:0:1::5]:1");
    /* the longest form fits in EP_STRLEN */
    inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", &a6.sin6_addr);
    a6.sin6_port = htons(65535);
    ep_format((struct sockaddr *)&a6, buf, sizeof buf);
    CHECK(strlen(buf) < EP_STRLEN);
    CHECK(buf[0] == '[' && strstr(buf, "]:65535") != NULL);
    /* unknown family */
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    CHECK_STR(ep_format((struct sockaddr *)&ss, buf, sizeof buf), "?");
    /* truncation stays NUL-terminated */
    ep_format((struct sockaddr *)&a4, tiny, sizeof tiny);
    CHECK_INT(strlen(tiny), sizeof tiny - 1);
    /* the formatted text parses back to the same endpoint */
    ep_format((struct sockaddr *)&a6, buf, sizeof buf);
    CHECK_INT(ep_parse(buf, &ss, err_, sizeof err_), 0);
    CHECK(ep_equal((struct sockaddr *)&ss, (struct sockaddr *)&a6));
}

static void t_len_port(void)
{
    struct sockaddr_storage a, b;
    CHECK_INT(ep_parse("10.0.0.1:80", &a, err_, sizeof err_), 0);
    CHECK_INT(ep_parse("[::1]:80", &b, err_, sizeof err_), 0);
    CHECK_INT(ep_len((struct sockaddr *)&a), sizeof(struct sockaddr_in));
    CHECK_INT(ep_len((struct sockaddr *)&b), sizeof(struct sockaddr_in6));
    ep_set_port((struct sockaddr *)&a, 65535);
    ep_set_port((struct sockaddr *)&b, 1);
    CHECK_INT(ep_port((struct sockaddr *)&a), 65535);
    CHECK_INT(ep_port((struct sockaddr *)&b), 1);
    {
        char buf[EP_STRLEN];
        CHECK_STR(ep_format((struct sockaddr *)&a, buf, sizeof buf), "10.0.0.1:65535");
        CHECK_STR(ep_format((struct sockaddr *)&b, buf, sizeof buf), "[::1]:1");
    }
}

static struct sockaddr *P(struct sockaddr_storage *ss, const char *s)
{
    if (ep_parse(s, ss, err_, sizeof err_) < 0)
        check_fail_(__FILE__, __LINE__, "ep_parse(%s): %s", s, err_);
    return (struct sockaddr *)ss;
}

static void t_equal(void)
{
    struct sockaddr_storage a, b;
    CHECK(ep_equal(P(&a, "1.2.3.4:5"), P(&b, "1.2.3.4:5")));
    CHECK(!ep_equal(P(&a, "1.2.3.4:5"), P(&b, "1.2.3.4:6")));
    CHECK(!ep_equal(P(&a, "1.2.3.4:5"), P(&b, "1.2.3.5:5")));
    CHECK(ep_equal(P(&a, "[::1]:5"), P(&b, "[0:0:0:0:0:0:0:1]:5")));
    CHECK(!ep_equal(P(&a, "[::1]:5"), P(&b, "[::2]:5")));
    CHECK(!ep_equal(P(&a, "[::1]:5"), P(&b, "[::1]:50")));
    /* a mapped address is a different family until unmapped */
    CHECK(!ep_equal(P(&a, "[::ffff:1.2.3.4]:5"), P(&b, "1.2.3.4:5")));
    CHECK(!ep_equal(P(&a, "127.0.0.1:5"), P(&b, "[::1]:5")));
    CHECK(ep_same_host(P(&a, "1.2.3.4:5"), P(&b, "1.2.3.4:6")));
    CHECK(!ep_same_host(P(&a, "1.2.3.4:5"), P(&b, "4.3.2.1:5")));
    CHECK(ep_same_host(P(&a, "[2001:db8::1]:5"), P(&b, "[2001:db8::1]:9")));
    CHECK(!ep_same_host(P(&a, "[2001:db8::1]:5"), P(&b, "[2001:db8::2]:5")));
    /* sockaddrs equal by value even when padding/other bytes differ */
    {
        struct sockaddr_in x, y;
        memset(&x, 0, sizeof x);
        memset(&y, 0xaa, sizeof y);
        x.sin_family = y.sin_family = AF_INET;
        x.sin_port = y.sin_port = htons(7);
        x.sin_addr.s_addr = y.sin_addr.s_addr = htonl(0x7f000001);
        CHECK(ep_equal((struct sockaddr *)&x, (struct sockaddr *)&y));
    }
}

static void t_unmap(void)
{
    struct sockaddr_storage a, b;
    char buf[EP_STRLEN];
    P(&a, "[::ffff:198.51.100.7]:51000");
    ep_unmap(&a);
    CHECK_INT(a.ss_family, AF_INET);
    CHECK_STR(ep_format((struct sockaddr *)&a, buf, sizeof buf), "198.51.100.7:51000");
    CHECK(ep_equal((struct sockaddr *)&a, P(&b, "198.51.100.7:51000")));
    /* plain IPv6 and IPv4 are left alone */
    P(&a, "[2001:db8::ffff:1.2.3.4]:80");
    ep_unmap(&a);
    CHECK_INT(a.ss_family, AF_INET6);
    CHECK_STR(ep_format((struct sockaddr *)&a, buf, sizeof buf), "[2001:db8::ffff:102:304]:80");
    P(&a, "[::1]:80");
    ep_unmap(&a);
    CHECK_STR(ep_format((struct sockaddr *)&a, buf, sizeof buf), "[::1]:80");
    P(&a, "10.1.2.3:4");
    ep_unmap(&a);
    CHECK_STR(ep_format((struct sockaddr *)&a, buf, sizeof buf), "10.1.2.3:4");
    /* IPv4-compatible (::1.2.3.4) is not mapped */
    P(&a, "[::1.2.3.4]:80");
    ep_unmap(&a);
    CHECK_INT(a.ss_family, AF_INET6);
}

static void resolve_ok(const char *in, bool zero, const char *want)
{
    struct sockaddr_storage ss;
    char buf[EP_STRLEN];
    err_[0] = '\0';
    if (!CHECK_MSG(ep_resolve(in, zero, &ss, err_, sizeof err_) == 0, "ep_resolve(%s): %s", in,
                   err_))
        return;
    CHECK_STR(ep_format((struct sockaddr *)&ss, buf, sizeof buf), want);
}

static void resolve_bad(const char *in, bool zero)
{
    struct sockaddr_storage ss;
    err_[0] = '\0';
    CHECK_MSG(ep_resolve(in, zero, &ss, err_, sizeof err_) == -1, "ep_resolve(\"%s\") accepted",
              in);
    CHECK_MSG(err_[0] != '\0', "ep_resolve(\"%s\"): no reason", in);
}

static void t_resolve(void)
{
    struct sockaddr_storage ss;
    resolve_ok("127.0.0.1:7000", false, "127.0.0.1:7000");
    resolve_ok("[::1]:7000", false, "[::1]:7000");
    resolve_ok("[2001:db8::1]:1", false, "[2001:db8::1]:1");
    resolve_ok("10.0.0.1:0", true, "10.0.0.1:0");
    resolve_ok(":7000", false, "0.0.0.0:7000"); /* empty host: IPv4 wildcard */
    resolve_ok(":0", true, "0.0.0.0:0");
    resolve_ok("[::]:7000", false, "[::]:7000");
    /* a name: localhost resolves to a loopback address of some family */
    if (CHECK_MSG(ep_resolve("localhost:7000", false, &ss, err_, sizeof err_) == 0, "localhost: %s",
                  err_)) {
        char buf[EP_STRLEN];
        ep_format((struct sockaddr *)&ss, buf, sizeof buf);
        CHECK_MSG(strcmp(buf, "127.0.0.1:7000") == 0 || strcmp(buf, "[::1]:7000") == 0,
                  "localhost -> %s", buf);
    }
    resolve_bad("127.0.0.1:0", false);
    resolve_bad("127.0.0.1:65536", true);
    resolve_bad("127.0.0.1:", true);
    resolve_bad("127.0.0.1", true);
    resolve_bad("127.0.0.1:http", true);
    resolve_bad("::1:80", true);
    resolve_bad("[::1]80", true);
    resolve_bad("[1.2.3.4]:80", true);
    resolve_bad("no-such-host.invalid:80", false);
    /* the reason names the input */
    CHECK_INT(ep_resolve("127.0.0.1:99999", false, &ss, err_, sizeof err_), -1);
    CHECK_MSG(strstr(err_, "127.0.0.1:99999") != NULL, "reason: %s", err_);
}

CHECK_MAIN(TEST(t_parse_good), TEST(t_parse_bad), TEST(t_format), TEST(t_len_port), TEST(t_equal),
           TEST(t_unmap), TEST(t_resolve))
