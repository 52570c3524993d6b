/* Address policy (common/addrpol): the class of every kind of address, IPv4-mapped and
 * -compatible IPv6 judged as IPv4, which candidates a peer may dial and which relay_addr it may
 * join. */
#include "check.h"
#include "common/addrpol.h"
#include "common/endpoint.h"

static struct sockaddr_storage ep_(const char *s)
{
    struct sockaddr_storage ss;
    char err[200];
    memset(&ss, 0, sizeof ss);
    CHECK_MSG(ep_parse(s, &ss, err, sizeof err) == 0, "ep_parse(%s): %s", s, err);
    return ss;
}

static void cls(const char *s, enum ap_class want)
{
    struct sockaddr_storage ss = ep_(s);
    enum ap_class got = ap_classify((struct sockaddr *)&ss);
    CHECK_MSG(got == want, "ap_classify(%s) = %d, want %d", s, got, want);
}

static void t_classes_v4(void)
{
    cls("8.8.8.8:1", AP_GLOBAL);
    cls("203.0.113.10:1", AP_GLOBAL); /* documentation ranges are labs' "public" addresses */
    cls("1.0.0.1:1", AP_GLOBAL);
    cls("10.1.2.3:1", AP_PRIVATE);
    cls("172.16.0.1:1", AP_PRIVATE);
    cls("172.31.255.255:1", AP_PRIVATE);
    cls("172.32.0.1:1", AP_GLOBAL);
    cls("172.15.255.255:1", AP_GLOBAL);
    cls("192.168.1.1:1", AP_PRIVATE);
    cls("100.64.0.1:1", AP_PRIVATE);
    cls("100.127.255.255:1", AP_PRIVATE);
    cls("100.128.0.1:1", AP_GLOBAL);
    cls("127.0.0.1:1", AP_LOOPBACK);
    cls("127.255.0.9:1", AP_LOOPBACK);
    cls("169.254.169.254:80", AP_LINKLOCAL);
    cls("169.253.1.1:1", AP_GLOBAL);
    cls("0.0.0.0:1", AP_UNSPEC);
    cls("0.1.2.3:1", AP_UNSPEC);
    cls("224.0.0.1:1", AP_MULTICAST);
    cls("239.255.255.255:1", AP_MULTICAST);
    cls("240.0.0.1:1", AP_RESERVED);
    cls("254.1.1.1:1", AP_RESERVED);
    cls("255.255.255.254:1", AP_RESERVED);
    cls("255.255.255.255:1", AP_BROADCAST);
}

static void t_classes_v6(void)
{
    cls("[2001:db8::1]:1", AP_GLOBAL);
    cls("[2a00::1]:1", AP_GLOBAL);
    cls("[::1]:1", AP_LOOPBACK);
    cls("[::]:1", AP_UNSPEC);
    cls("[fe80::1]:1", AP_LINKLOCAL);
    cls("[febf::1]:1", AP_LINKLOCAL);
    cls("[fec0::1]:1", AP_PRIVATE);
    cls("[fc00::1]:1", AP_PRIVATE);
    cls("[fd12:3456::1]:1", AP_PRIVATE);
    cls("[ff02::1]:1", AP_MULTICAST);
    /* mapped and compatible forms are the IPv4 address they carry */
    cls("[::ffff:127.0.0.1]:1", AP_LOOPBACK);
    cls("[::ffff:169.254.169.254]:1", AP_LINKLOCAL);
    cls("[::ffff:0.0.0.0]:1", AP_UNSPEC);
    cls("[::ffff:224.0.0.1]:1", AP_MULTICAST);
    cls("[::ffff:255.255.255.255]:1", AP_BROADCAST);
    cls("[::ffff:240.0.0.1]:1", AP_RESERVED);
    cls("[::ffff:8.8.8.8]:1", AP_GLOBAL);
    cls("[::ffff:10.0.0.1]:1", AP_PRIVATE);
    /* NAT64, SIIT and 6to4 stand for an IPv4 address too: a gateway on the way makes them it */
    cls("[64:ff9b::127.0.0.1]:1", AP_LOOPBACK);
    cls("[64:ff9b::169.254.169.254]:80", AP_LINKLOCAL);
    cls("[64:ff9b::10.0.0.1]:1", AP_PRIVATE);
    cls("[64:ff9b::8.8.8.8]:1", AP_GLOBAL);
    cls("[64:ff9b:1::127.0.0.1]:1", AP_LOOPBACK);
    cls("[64:ff9b:1:7f00:1::]:1", AP_RESERVED); /* another local-use layout: never global */
    cls("[::ffff:0:127.0.0.1]:1", AP_LOOPBACK);
    cls("[::ffff:0:169.254.169.254]:1", AP_LINKLOCAL);
    cls("[2002:7f00:1::1]:1", AP_LOOPBACK);
    cls("[2002:a9fe:a9fe::1]:80", AP_LINKLOCAL);
    cls("[2002:c0a8:101::1]:1", AP_PRIVATE);
    cls("[2002:808:808::1]:1", AP_GLOBAL);
    cls("[2001:db8::1]:1", AP_GLOBAL);
    cls("[::127.0.0.1]:1", AP_LOOPBACK);
    cls("[::169.254.1.1]:1", AP_LINKLOCAL);
    cls("[::224.1.1.1]:1", AP_MULTICAST);
    cls("[::8.8.8.8]:1", AP_GLOBAL);
}

static void cand(const char *s, bool loopback_ok, bool want_ok)
{
    struct sockaddr_storage ss = ep_(s);
    const char *why = ap_bad_candidate((struct sockaddr *)&ss, loopback_ok);
    CHECK_MSG((why == NULL) == want_ok, "ap_bad_candidate(%s, %d) = %s", s, loopback_ok,
              why ? why : "(ok)");
}

static void t_candidates(void)
{
    static const char *const never[] = {
        "169.254.169.254:80", "[fe80::1]:22",      "0.0.0.0:22",          "0.9.9.9:22",
        "[::]:22",            "224.0.0.251:5353",  "[ff02::1]:22",        "255.255.255.255:9",
        "240.0.0.1:9",        "[::ffff:169.254.169.254]:80", "[::ffff:0.0.0.0]:22",
        "[::ffff:255.255.255.255]:9", "[::169.254.1.1]:80", "[::ffff:224.0.0.1]:9"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        cand(never[i], false, false);
        cand(never[i], true, false);
    }
    /* loopback only when the server (and so every peer) is on this host */
    cand("127.0.0.1:22", false, false);
    cand("[::1]:22", false, false);
    cand("[::ffff:127.0.0.1]:22", false, false);
    cand("[::127.0.0.1]:22", false, false);
    cand("127.0.0.1:22", true, true);
    cand("[::1]:22", true, true);
    /* ordinary unicast, public or private (peers behind one NAT) */
    cand("203.0.113.10:40000", false, true);
    cand("192.168.1.9:40000", false, true);
    cand("10.0.0.2:1", false, true);
    cand("[2001:db8::7]:7000", false, true);
    cand("[fd00::7]:7000", false, true);
    struct sockaddr_storage ll = ep_("169.254.1.1:1");
    CHECK_STR(ap_bad_candidate((struct sockaddr *)&ll, true),
              "a link-local (169.254.0.0/16) address");
    struct sockaddr_storage mc = ep_("224.0.0.1:5000");
    CHECK_STR(ap_bad_candidate((struct sockaddr *)&mc, true), "a multicast address");
}

static void relay(const char *r, const char *srv, bool want_ok)
{
    struct sockaddr_storage a = ep_(r), b = ep_(srv);
    const char *why = ap_bad_relay((struct sockaddr *)&a, (struct sockaddr *)&b);
    CHECK_MSG((why == NULL) == want_ok, "ap_bad_relay(%s, server %s) = %s", r, srv,
              why ? why : "(ok)");
}

static void t_relay(void)
{
    relay("127.0.0.1:7100", "127.0.0.1:7000", true); /* another instance on the server's host */
    relay("127.0.0.1:7000", "127.0.0.1:7000", true);
    relay("127.0.0.2:7100", "127.0.0.1:7000", false); /* loopback but not the server */
    relay("127.0.0.1:7100", "203.0.113.1:7000", false);
    relay("203.0.113.2:7100", "203.0.113.1:7000", true); /* a public sibling */
    relay("203.0.113.2:7100", "127.0.0.1:7000", true);
    relay("10.0.0.5:7100", "203.0.113.1:7000", false); /* into our LAN */
    relay("10.0.0.5:7100", "10.0.0.5:7000", true);     /* the server's own private address */
    relay("10.0.0.6:7100", "10.0.0.5:7000", false);
    relay("169.254.169.254:80", "203.0.113.1:7000", false);
    relay("169.254.169.254:80", "169.254.169.254:7000", false); /* never link-local */
    relay("224.0.0.1:7100", "203.0.113.1:7000", false);
    relay("0.0.0.0:7100", "203.0.113.1:7000", false);
    relay("[2001:db8::2]:7100", "203.0.113.1:7000", true);
    relay("[::1]:7100", "[::1]:7000", true);
    relay("[::1]:7100", "127.0.0.1:7000", false);
    relay("[::ffff:127.0.0.1]:7100", "203.0.113.1:7000", false);
}

static void t_loopback(void)
{
    struct sockaddr_storage a = ep_("[::ffff:127.0.0.1]:1"), b = ep_("127.3.0.1:1"),
                            c = ep_("128.0.0.1:1"), d = ep_("[::2]:1");
    CHECK(ap_is_loopback((struct sockaddr *)&a));
    CHECK(ep_is_loopback((struct sockaddr *)&b));
    CHECK(!ep_is_loopback((struct sockaddr *)&c));
    CHECK(!ap_is_loopback((struct sockaddr *)&d));
}

CHECK_MAIN(TEST(t_classes_v4), TEST(t_classes_v6), TEST(t_candidates), TEST(t_relay),
           TEST(t_loopback))
