/* Address policy (common/addrpol): the class of every kind of address, IPv4-mapped and
 * -compatible IPv6 judged as IPv4, which candidates a peer may dial and which relay_addr it may
 * join. */
#include "check.h"
#include "common/addrpol.h"
#include "common/endpoint.h"
#include "common/sock.h"

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
    static const char *const never[] = {"169.254.169.254:80",
                                        "[fe80::1]:22",
                                        "0.0.0.0:22",
                                        "0.9.9.9:22",
                                        "[::]:22",
                                        "224.0.0.251:5353",
                                        "[ff02::1]:22",
                                        "255.255.255.255:9",
                                        "240.0.0.1:9",
                                        "[::ffff:169.254.169.254]:80",
                                        "[::ffff:0.0.0.0]:22",
                                        "[::ffff:255.255.255.255]:9",
                                        "[::169.254.1.1]:80",
                                        "[::ffff:224.0.0.1]:9"};
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

/* One row per address: what each of the policies said before they moved into addrpol, captured
 * by running the old functions (the server's srv_bad_candidate, sock.c's sk_addr_usable,
 * ep_is_loopback, sk_is_global6, the peer's ap_bad_candidate) on these addresses: the moved
 * policies must answer exactly the same, word for word (the server's words go out in
 * bad-endpoint errors). NULL: usable. */
struct ap_row {
    const char *addr;
    const char *offer, *offer_lo; /* ap_bad_offer(sa, false / true): the server's */
    const char *dial, *dial_lo;   /* ap_bad_candidate(sa, false / true): the peer's */
    bool local;                   /* ap_local_usable: sk_local_addrs' */
    bool loopback;                /* ep_is_loopback */
    bool global6;                 /* sk_is_global6 */
};

/* the words of the old functions */
#define SRV_LOOP "a loopback address, from a peer that is not on the server's host"
#define LL4 "a link-local (169.254.0.0/16) address"
#define LL6 "a link-local (fe80::/10) address"
#define UNSPEC4 "an unspecified (0.0.0.0/8) address"
#define UNSPEC6 "the unspecified address ::"
#define MCAST "a multicast address"
#define SRV_240 "a broadcast or reserved (240.0.0.0/4) address"
#define RESV "a reserved (240.0.0.0/4) address"
#define BCAST "the broadcast address"
#define LOOP "a loopback address"

static const struct ap_row ap_rows[] = {
    {"8.8.8.8:1", NULL, NULL, NULL, NULL, true, false, false},
    {"1.0.0.1:1", NULL, NULL, NULL, NULL, true, false, false},
    {"203.0.113.10:1", NULL, NULL, NULL, NULL, true, false, false},
    {"198.51.100.1:1", NULL, NULL, NULL, NULL, true, false, false},
    {"192.0.2.1:1", NULL, NULL, NULL, NULL, true, false, false},
    {"10.1.2.3:1", NULL, NULL, NULL, NULL, true, false, false},
    {"172.16.0.1:1", NULL, NULL, NULL, NULL, true, false, false},
    {"172.31.255.255:1", NULL, NULL, NULL, NULL, true, false, false},
    {"172.32.0.1:1", NULL, NULL, NULL, NULL, true, false, false},
    {"192.168.1.1:1", NULL, NULL, NULL, NULL, true, false, false},
    {"100.64.0.1:1", NULL, NULL, NULL, NULL, true, false, false},
    {"100.127.255.255:1", NULL, NULL, NULL, NULL, true, false, false},
    {"100.128.0.1:1", NULL, NULL, NULL, NULL, true, false, false},
    {"127.0.0.1:1", SRV_LOOP, NULL, LOOP, NULL, false, true, false},
    {"127.255.0.9:1", SRV_LOOP, NULL, LOOP, NULL, false, true, false},
    {"169.254.169.254:80", LL4, LL4, LL4, LL4, false, false, false},
    {"169.253.1.1:1", NULL, NULL, NULL, NULL, true, false, false},
    {"0.0.0.0:1", UNSPEC4, UNSPEC4, UNSPEC4, UNSPEC4, false, false, false},
    {"0.1.2.3:1", UNSPEC4, UNSPEC4, UNSPEC4, UNSPEC4, false, false, false},
    {"224.0.0.1:1", MCAST, MCAST, MCAST, MCAST, false, false, false},
    {"239.255.255.255:1", MCAST, MCAST, MCAST, MCAST, false, false, false},
    {"240.0.0.1:1", SRV_240, SRV_240, RESV, RESV, false, false, false},
    {"254.1.1.1:1", SRV_240, SRV_240, RESV, RESV, false, false, false},
    {"255.255.255.254:1", SRV_240, SRV_240, RESV, RESV, false, false, false},
    {"255.255.255.255:1", SRV_240, SRV_240, BCAST, BCAST, false, false, false},
    {"[2001:db8::1]:1", NULL, NULL, NULL, NULL, true, false, true},
    {"[2a00::1]:1", NULL, NULL, NULL, NULL, true, false, true},
    {"[::1]:1", SRV_LOOP, NULL, LOOP, NULL, false, true, false},
    {"[::]:1", UNSPEC6, UNSPEC6, UNSPEC6, UNSPEC6, false, false, false},
    {"[::2]:1", NULL, NULL, UNSPEC4, UNSPEC4, false, false, false},
    {"[fe80::1]:1", LL6, LL6, LL6, LL6, false, false, false},
    {"[febf::1]:1", LL6, LL6, LL6, LL6, false, false, false},
    {"[fec0::1]:1", NULL, NULL, NULL, NULL, true, false, false},
    {"[fc00::1]:1", NULL, NULL, NULL, NULL, true, false, false},
    {"[fd12:3456::1]:1", NULL, NULL, NULL, NULL, true, false, false},
    {"[ff02::1]:1", MCAST, MCAST, MCAST, MCAST, false, false, false},
    {"[ff0e::1]:1", MCAST, MCAST, MCAST, MCAST, false, false, false},
    {"[::ffff:127.0.0.1]:1", SRV_LOOP, NULL, LOOP, NULL, false, true, false},
    {"[::ffff:169.254.169.254]:1", LL4, LL4, LL4, LL4, false, false, false},
    {"[::ffff:0.0.0.0]:1", UNSPEC4, UNSPEC4, UNSPEC4, UNSPEC4, false, false, false},
    {"[::ffff:224.0.0.1]:1", MCAST, MCAST, MCAST, MCAST, false, false, false},
    {"[::ffff:255.255.255.255]:1", SRV_240, SRV_240, BCAST, BCAST, false, false, false},
    {"[::ffff:240.0.0.1]:1", SRV_240, SRV_240, RESV, RESV, false, false, false},
    {"[::ffff:8.8.8.8]:1", NULL, NULL, NULL, NULL, true, false, false},
    {"[::ffff:10.0.0.1]:1", NULL, NULL, NULL, NULL, true, false, false},
    {"[::ffff:100.64.0.1]:1", NULL, NULL, NULL, NULL, true, false, false},
    {"[64:ff9b::127.0.0.1]:1", NULL, NULL, LOOP, NULL, false, true, false},
    {"[64:ff9b::169.254.169.254]:80", NULL, NULL, LL4, LL4, false, false, false},
    {"[64:ff9b::10.0.0.1]:1", NULL, NULL, NULL, NULL, true, false, false},
    {"[64:ff9b::8.8.8.8]:1", NULL, NULL, NULL, NULL, true, false, false},
    {"[64:ff9b:1::127.0.0.1]:1", NULL, NULL, LOOP, NULL, false, true, false},
    {"[64:ff9b:1:7f00:1::]:1", NULL, NULL, RESV, RESV, false, false, false},
    {"[::ffff:0:127.0.0.1]:1", NULL, NULL, LOOP, NULL, false, true, false},
    {"[::ffff:0:169.254.169.254]:1", NULL, NULL, LL4, LL4, false, false, false},
    {"[2002:7f00:1::1]:1", NULL, NULL, LOOP, NULL, false, true, true},
    {"[2002:a9fe:a9fe::1]:80", NULL, NULL, LL4, LL4, false, false, true},
    {"[2002:c0a8:101::1]:1", NULL, NULL, NULL, NULL, true, false, true},
    {"[2002:808:808::1]:1", NULL, NULL, NULL, NULL, true, false, true},
    {"[::127.0.0.1]:1", NULL, NULL, LOOP, NULL, false, true, false},
    {"[::169.254.1.1]:1", NULL, NULL, LL4, LL4, false, false, false},
    {"[::224.1.1.1]:1", NULL, NULL, MCAST, MCAST, false, false, false},
    {"[::8.8.8.8]:1", NULL, NULL, NULL, NULL, true, false, false},
    {"[::0.0.0.2]:1", NULL, NULL, UNSPEC4, UNSPEC4, false, false, false},
};

static bool same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void rule(const char *name, const char *addr, const char *got, const char *want)
{
    CHECK_MSG(same(got, want), "%s(%s) = %s, want %s", name, addr, got ? got : "NULL",
              want ? want : "NULL");
}

static void t_policy_table(void)
{
    for (size_t i = 0; i < sizeof ap_rows / sizeof ap_rows[0]; i++) {
        const struct ap_row *r = &ap_rows[i];
        struct sockaddr_storage ss = ep_(r->addr);
        const struct sockaddr *sa = (const struct sockaddr *)&ss;
        rule("ap_bad_offer", r->addr, ap_bad_offer(sa, false), r->offer);
        rule("ap_bad_offer/loopback_ok", r->addr, ap_bad_offer(sa, true), r->offer_lo);
        rule("ap_bad_candidate", r->addr, ap_bad_candidate(sa, false), r->dial);
        rule("ap_bad_candidate/loopback_ok", r->addr, ap_bad_candidate(sa, true), r->dial_lo);
        CHECK_MSG(ap_local_usable(sa) == r->local, "ap_local_usable(%s)", r->addr);
        CHECK_MSG(ep_is_loopback(sa) == r->loopback, "ep_is_loopback(%s)", r->addr);
        CHECK_MSG(ap_is_loopback(sa) == r->loopback, "ap_is_loopback(%s)", r->addr);
        CHECK_MSG(sk_is_global6(sa) == r->global6, "sk_is_global6(%s)", r->addr);
        CHECK_MSG(ap_is_global6(sa) == r->global6, "ap_is_global6(%s)", r->addr);
    }
}

static void plain(const char *s, enum ap_class want)
{
    struct sockaddr_storage ss = ep_(s);
    enum ap_class got = ap_classify_plain((struct sockaddr *)&ss);
    CHECK_MSG(got == want, "ap_classify_plain(%s) = %d, want %d", s, got, want);
}

static bool is(bool (*f)(const struct sockaddr *), const char *s)
{
    struct sockaddr_storage ss = ep_(s);
    return f((struct sockaddr *)&ss);
}

static void t_traits(void)
{
    uint32_t v4 = 0;
    struct sockaddr_storage ss = ep_("[64:ff9b::10.1.2.3]:1");
    /* as written: only the mapped form is IPv4 */
    plain("[::ffff:127.0.0.1]:1", AP_LOOPBACK);
    plain("[64:ff9b::127.0.0.1]:1", AP_GLOBAL);
    plain("[::127.0.0.1]:1", AP_GLOBAL);
    plain("[2002:7f00:1::1]:1", AP_GLOBAL);
    plain("[64:ff9b:1:7f00:1::]:1", AP_GLOBAL);
    plain("[fd00::1]:1", AP_PRIVATE);
    plain("10.0.0.1:1", AP_PRIVATE);
    CHECK(ap_v4_of((struct sockaddr *)&ss, &v4));
    CHECK_INT(v4, 0x0a010203);
    ss = ep_("[2001:db8::1]:1");
    CHECK(!ap_v4_of((struct sockaddr *)&ss, &v4));
    CHECK(is(ap_is_cgnat, "100.64.0.1:1"));
    CHECK(is(ap_is_cgnat, "100.127.255.255:1"));
    CHECK(is(ap_is_cgnat, "[::ffff:100.100.1.1]:1"));
    CHECK(!is(ap_is_cgnat, "100.128.0.1:1"));
    CHECK(!is(ap_is_cgnat, "10.0.0.1:1"));
    CHECK(is(ap_is_documentation, "192.0.2.1:1"));
    CHECK(is(ap_is_documentation, "198.51.100.200:1"));
    CHECK(is(ap_is_documentation, "203.0.113.10:1"));
    CHECK(is(ap_is_documentation, "[2001:db8::7]:1"));
    CHECK(!is(ap_is_documentation, "203.0.114.1:1"));
    CHECK(!is(ap_is_documentation, "[2001:db9::1]:1"));
    CHECK(!is(ap_is_documentation, "8.8.8.8:1"));
}

CHECK_MAIN(TEST(t_classes_v4), TEST(t_classes_v6), TEST(t_candidates), TEST(t_relay),
           TEST(t_loopback), TEST(t_policy_table), TEST(t_traits))
