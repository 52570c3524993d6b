/* The server's per-address limits (token buckets, connection counts, a bounded table that
 * forgets idle sources) and the id/key files (--id-db, --authorized). */
#include "check.h"
#include "common/identity.h"
#include "rendezvous/gate.h"
#include "rendezvous/idkeys.h"
#include "rendezvous/limits.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static struct sockaddr_storage addr(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &a->sin6_addr);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &a->sin_addr);
    }
    return ss;
}

static enum lim_verdict admit(struct lim *l, const char *ip, uint64_t now, struct lim_src **src)
{
    struct sockaddr_storage ss = addr(ip);
    return lim_admit(l, (const struct sockaddr *)&ss, now, src);
}

static void t_bucket(void)
{
    struct lim_bucket b;
    memset(&b, 0, sizeof b);
    b.last_ms = 1000;
    for (int i = 0; i < 5; i++)
        CHECK_INT(lim_take(&b, 5, 1000), 0);
    CHECK_INT(lim_take(&b, 5, 1000), -1);
    CHECK_INT(lim_take(&b, 5, 1199), -1); /* 0.995 tokens back */
    CHECK_INT(lim_take(&b, 5, 1200), 0);  /* one token per 200 ms */
    CHECK_INT(lim_take(&b, 5, 1200), -1);
    CHECK_INT(lim_take(&b, 5, 100000), 0); /* a long pause refills to the burst, no more */
    for (int i = 0; i < 4; i++)
        CHECK_INT(lim_take(&b, 5, 100000), 0);
    CHECK_INT(lim_take(&b, 5, 100000), -1);
    CHECK_INT(lim_take(&b, 0, 100000), 0); /* rate 0: no limit */
}

static void t_per_source(void)
{
    struct lim_cfg cfg = {.max_per_ip = 2, .rate_per_ip = 3, .max_sources = 4};
    struct lim *l;
    struct lim_src *a1, *a2, *a3, *b, *v6a, *v6b, *x;
    if (!CHECK(sodium_init() >= 0)) /* the table's hash key comes from randombytes */
        return;
    l = lim_new(&cfg);
    if (!CHECK(l))
        return;
    CHECK_INT(admit(l, "192.0.2.1", 0, &a1), LIM_OK);
    CHECK_INT(admit(l, "192.0.2.1", 0, &a2), LIM_OK);
    CHECK_INT(admit(l, "192.0.2.1", 0, &a3), LIM_CONNS);
    CHECK(a3 == NULL);
    CHECK_INT(admit(l, "192.0.2.2", 0, &b), LIM_OK); /* another address is not affected */
    lim_release(l, a1, 10);
    CHECK_INT(admit(l, "192.0.2.1", 10, &a1), LIM_OK); /* the 3rd token */
    lim_release(l, a1, 20);
    CHECK_INT(admit(l, "192.0.2.1", 20, &a1), LIM_RATE); /* bucket empty, not the cap */
    /* IPv6 is counted per /64 */
    CHECK_INT(admit(l, "2001:db8::1", 0, &v6a), LIM_OK);
    CHECK_INT(admit(l, "2001:db8::ffff:2", 0, &v6b), LIM_OK);
    CHECK(v6a == v6b);
    CHECK_INT(lim_sources(l), 4); /* the /64 and its /48 */
    /* the table is full: a new source is refused rather than grown */
    CHECK_INT(admit(l, "198.51.100.9", 30, &x), LIM_FULL);
    /* sources with no connection are forgotten a second after their last one closed */
    lim_release(l, a2, 40);
    lim_release(l, b, 40);
    lim_release(l, v6a, 40);
    lim_release(l, v6b, 40);
    lim_expire(l, 1039);
    CHECK_INT(lim_sources(l), 4);
    lim_expire(l, 1040);
    CHECK_INT(lim_sources(l), 0);
    CHECK_INT(admit(l, "198.51.100.9", 1040, &x), LIM_OK);
    lim_release(l, x, 1041);
    lim_free(l);
}

/* IPv6: a /48 holds 65536 /64s; together they get 8 times the limits of one */
static void t_per_site(void)
{
    struct lim_cfg cfg = {.max_per_ip = 2, .rate_per_ip = 0, .max_sources = 100};
    struct lim_cfg rcfg = {.max_per_ip = 0, .rate_per_ip = 1, .max_sources = 100};
    struct lim_src *src[17], *x;
    char ip[64];
    struct lim *l = lim_new(&cfg);
    if (!CHECK(l))
        return;
    for (int i = 0; i < 16; i++) {
        snprintf(ip, sizeof ip, "2001:db8:1:%x::1", i);
        CHECK_INT(admit(l, ip, 0, &src[i]), LIM_OK);
    }
    CHECK_INT(admit(l, "2001:db8:1:ff::1", 0, &x), LIM_CONNS); /* the /48 holds 16 */
    CHECK(x == NULL);
    CHECK_INT(admit(l, "2001:db8:2::1", 0, &x), LIM_OK); /* another /48 */
    lim_release(l, x, 0);
    lim_release(l, src[3], 0);
    CHECK_INT(admit(l, "2001:db8:1:ff::1", 0, &src[16]), LIM_OK);
    for (int i = 0; i < 17; i++)
        if (i != 3)
            lim_release(l, src[i], 10);
    lim_expire(l, 1010);
    CHECK_INT(lim_sources(l), 0); /* refused and released entries are all forgotten */
    lim_free(l);

    l = lim_new(&rcfg);
    if (!CHECK(l))
        return;
    for (int i = 0; i < 8; i++) {
        snprintf(ip, sizeof ip, "2001:db8:1:%x::1", i);
        CHECK_INT(admit(l, ip, 0, &src[i]), LIM_OK);
    }
    CHECK_INT(admit(l, "2001:db8:1:ff::1", 0, &x), LIM_RATE); /* 8 per second per /48 */
    CHECK_INT(admit(l, "2001:db8:1:ff::1", 1000, &x), LIM_OK);
    lim_release(l, x, 1000);
    for (int i = 0; i < 8; i++)
        lim_release(l, src[i], 1000);
    lim_free(l);
}

static char *tmpfile_with(const char *text)
{
    static char path[64];
    int fd;
    snprintf(path, sizeof path, "/tmp/test_limits.XXXXXX");
    fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        check_fail_(__FILE__, __LINE__, "cannot write %s", path);
    if (fd >= 0)
        close(fd);
    return path;
}

#define K1 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define K2 "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="

static void t_files(void)
{
    struct ik_load_info info;
    char err[300];
    struct ik *t = ik_new(0);
    char *p;
    const unsigned char *k;
    if (!CHECK(t))
        return;
    p = tmpfile_with("# operators' notes\n\n  alice\t" K1 "  \nbob " K2 "\n");
    CHECK_INT(ik_load(t, p, IK_ALLOWLIST, false, &info, err, sizeof err), 0);
    CHECK_INT(info.lines, 2);
    k = ik_find(t, "alice");
    CHECK(k && k[0] == 0 && k[31] == 31);
    CHECK(ik_find(t, "carol") == NULL);
    unlink(p);
    ik_free(t);

    /* errors name the line */
    struct {
        const char *text, *want;
    } bad[] = {
        {"alice " K1 "\nbob\n", ":2: expected"},
        {"al ice " K1 "\n", ":1: the key of \"al\""},
        {"a/b " K1 "\n", ":1: \"a/b\" is not an id"},
        {"alice AAAA\n", ":1: the key of \"alice\""},
        {"alice " K1 "\nalice " K2 "\n", ":2: \"alice\" is listed twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = ik_new(0);
        p = tmpfile_with(bad[i].text);
        err[0] = '\0';
        CHECK_INT(ik_load(t, p, IK_ALLOWLIST, false, &info, err, sizeof err), -1);
        CHECK_MSG(strstr(err, bad[i].want) != NULL, "case %zu: \"%s\" lacks \"%s\"", i, err,
                  bad[i].want);
        unlink(p);
        ik_free(t);
    }

    /* the database: first key wins, a torn tail is dropped, and a rewrite keeps the order */
    t = ik_new(0);
    p = tmpfile_with("alice " K1 "\nbob " K2 "\nalice " K2 "\ncarol AQID");
    CHECK_INT(ik_load(t, p, IK_DATABASE, false, &info, err, sizeof err), 0);
    CHECK_INT(info.lines, 2);
    CHECK_INT(info.dropped, 2);
    CHECK(info.rewrite);
    k = ik_find(t, "alice");
    CHECK(k && k[0] == 0);
    CHECK_INT(ik_rewrite(t, p, err, sizeof err), 0);
    {
        FILE *f = fopen(p, "r");
        char buf[256] = "";
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        buf[n] = '\0';
        if (f)
            fclose(f);
        /* lines without a stamp count as seen at the load, and the rewrite stamps them */
        CHECK(strncmp(buf, "alice " K1 " 1", strlen("alice " K1 " 1")) == 0);
        CHECK(strstr(buf, "\nbob " K2 " 1") != NULL);
    }
    CHECK_INT(ik_add(t, "alice", ik_find(t, "bob")), IK_EXISTS);
    unlink(p);
    ik_free(t);

    /* a bounded table refuses ids beyond its size */
    t = ik_new(1);
    {
        unsigned char key[PROTO_KEY_BYTES] = {0};
        CHECK_INT(ik_add(t, "a", key), IK_OK);
        CHECK_INT(ik_add(t, "b", key), IK_FULL);
    }
    ik_free(t);
    /* a missing database is an empty one */
    t = ik_new(0);
    CHECK_INT(ik_load(t, "/nonexistent/ids", IK_DATABASE, true, &info, err, sizeof err), 0);
    CHECK_INT(ik_load(t, "/nonexistent/ids", IK_ALLOWLIST, false, &info, err, sizeof err), -1);
    ik_free(t);
}

/* last-seen stamps, touches, lapsing, ids per key */
static void t_seen(void)
{
    struct ik_load_info info;
    char err[300];
    struct ik *t = ik_new(0);
    char *p;
    int64_t disk;
    unsigned char key[PROTO_KEY_BYTES] = {0};
    if (!CHECK(t))
        return;
    p = tmpfile_with("alice " K1 " 1000\nbob " K2 " 5000\nalice " K1 " 9000\nalice " K2 " 99999\n"
                     "carol " K1 " 7000\n");
    CHECK_INT(ik_load(t, p, IK_DATABASE, false, &info, err, sizeof err), 0);
    CHECK_INT(info.lines, 3);
    CHECK_INT(info.touches, 1); /* alice K1 again: a touch */
    CHECK_INT(info.dropped, 1); /* alice K2: another key, first key wins */
    CHECK_INT(ik_seen(t, "alice", &disk), 9000);
    CHECK_INT(disk, 9000);
    CHECK_INT(ik_key_ids(t, ik_find(t, "alice")), 2); /* alice and carol */
    CHECK_INT(ik_expire(t, 8000, NULL, NULL), 2);     /* bob and carol lapse */
    CHECK(ik_find(t, "bob") == NULL && ik_find(t, "carol") == NULL && ik_find(t, "alice"));
    CHECK_INT(ik_key_ids(t, ik_find(t, "alice")), 1);
    CHECK_INT(ik_count(t), 1);
    CHECK_INT(ik_remove(t, "alice"), 0);
    CHECK_INT(ik_remove(t, "alice"), -1);
    CHECK_INT(ik_key_ids(t, key), 0);
    unlink(p);
    ik_free(t);
    /* a stamp that is not a number is an error, and an allowlist takes none */
    t = ik_new(0);
    p = tmpfile_with("alice " K1 " soon\n");
    CHECK_INT(ik_load(t, p, IK_DATABASE, false, &info, err, sizeof err), -1);
    CHECK(strstr(err, ":1: the last-seen time") != NULL);
    CHECK_INT(ik_load(t, p, IK_ALLOWLIST, false, &info, err, sizeof err), -1);
    unlink(p);
    ik_free(t);
}

/* A database line that two writes ran into each other (the first cut short, the next appended
 * to it) is refused with its line number and what to do, not guessed at: dropping it could give
 * its id to another key. */
static void t_db_torn_middle(void)
{
    struct ik_load_info info;
    char err[400];
    struct ik *t = ik_new(0);
    char *p = tmpfile_with("alice " K1 " 100\n"
                           "bob AAECAwQFBgcICQocarol " K2 " 200\n"
                           "dave " K2 " 300\n");
    memset(&info, 0, sizeof info);
    CHECK_INT(ik_load(t, p, IK_DATABASE, false, &info, err, sizeof err), -1);
    CHECK_MSG(strstr(err, ":2: ") && strstr(err, "fix or delete this line by hand"), "err: %s",
              err);
    unlink(p);
    ik_free(t);
}

/* A failed append (here the file size limit: a short write, then EFBIG) leaves the file as it
 * was, so the next append starts a line of its own and the file still loads. */
static void t_db_failed_append(void)
{
    struct ik_load_info info;
    struct rlimit old, lim;
    char err[300];
    unsigned char k1[32], k2[32];
    struct ik *t = ik_new(0);
    char *p = tmpfile_with("alice " K1 " 100\n");
    int fd, rc;
    struct stat st;
    CHECK_INT(id_pk_decode(K1, k1), 0);
    CHECK_INT(id_pk_decode(K2, k2), 0);
    if (!CHECK((fd = ik_open_append(p, err, sizeof err)) >= 0))
        return;
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)(strlen("alice " K1 " 100\n") + 10); /* room for 10 bytes */
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
    rc = ik_append(fd, "bob", k2, 200, true, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK_INT(rc, -1);
    CHECK(fstat(fd, &st) == 0 && (size_t)st.st_size == strlen("alice " K1 " 100\n"));
    CHECK_INT(ik_append(fd, "carol", k2, 300, true, err, sizeof err), 0);
    close(fd);
    memset(&info, 0, sizeof info);
    CHECK_MSG(ik_load(t, p, IK_DATABASE, false, &info, err, sizeof err) == 0, "load: %s", err);
    CHECK(ik_find(t, "alice") && ik_find(t, "carol") && !ik_find(t, "bob"));
    CHECK(ik_find(t, "carol") && memcmp(ik_find(t, "carol"), k2, 32) == 0);
    unlink(p);
    ik_free(t);
}

/* new ids per source per window */
static void t_window(void)
{
    struct limw *w = limw_new(2, 1000);
    struct sockaddr_in a = {.sin_family = AF_INET}, b = a, c = a;
    if (!CHECK(w))
        return;
    a.sin_addr.s_addr = htonl(0x0a000001);
    b.sin_addr.s_addr = htonl(0x0a000002);
    c.sin_addr.s_addr = htonl(0x0a000003);
    CHECK_INT(limw_take(w, (struct sockaddr *)&a, 2, 0), LIM_OK);
    CHECK_INT(limw_take(w, (struct sockaddr *)&a, 2, 10), LIM_OK);
    CHECK_INT(limw_take(w, (struct sockaddr *)&a, 2, 20), LIM_RATE);
    CHECK_INT(limw_take(w, (struct sockaddr *)&b, 2, 30), LIM_OK);
    CHECK_INT(limw_take(w, (struct sockaddr *)&c, 0, 40), LIM_OK); /* no limit */
    CHECK_INT(limw_take(w, (struct sockaddr *)&b, 2, 1010), LIM_OK);
    CHECK_INT(limw_take(w, (struct sockaddr *)&b, 2, 1020), LIM_RATE); /* b's window is not over */
    CHECK_INT(limw_take(w, (struct sockaddr *)&a, 2, 1020), LIM_OK);   /* a's is */
    limw_free(w);
}

/* A full table forgets its oldest window instead of refusing every new source (which let
 * whoever filled it lock out all new ids for an hour). */
static void t_window_full(void)
{
    struct limw *w = limw_new(64, 3600000);
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (!CHECK(w))
        return;
    for (unsigned i = 0; i < 1000; i++) {
        a.sin_addr.s_addr = htonl(0x0a000000 + i);
        CHECK_INT(limw_take(w, (struct sockaddr *)&a, 1, i), LIM_OK);
    }
    CHECK(limw_sources(w) <= 64);
    a.sin_addr.s_addr = htonl(0x0a000000 + 999); /* the newest window is kept */
    CHECK_INT(limw_take(w, (struct sockaddr *)&a, 1, 1000), LIM_RATE);
    limw_free(w);
}

static struct sockaddr_storage addr6_in_site(unsigned net)
{
    char ip[64];
    snprintf(ip, sizeof ip, "2001:db8:1:%x::1", net);
    return addr(ip);
}

/* One /48 holds 65536 /64s: its own window (LIM_SITE_FACTOR x max) bounds it. */
static void t_window_site(void)
{
    struct limw *w = limw_new(65536, 3600000);
    struct sockaddr_storage ss;
    unsigned ok = 0;
    if (!CHECK(w))
        return;
    for (unsigned net = 0; net < 600; net++) {
        ss = addr6_in_site(net);
        for (unsigned k = 0; k < 20; k++)
            ok += limw_take(w, (struct sockaddr *)&ss, 20, net) == LIM_OK;
    }
    CHECK_MSG(ok == 20 * LIM_SITE_FACTOR, "600 /64s of one /48 took %u new ids, want %u", ok,
              20 * LIM_SITE_FACTOR);
    ss = addr("2001:db8:2::1"); /* another /48 is not affected */
    CHECK_INT(limw_take(w, (struct sockaddr *)&ss, 20, 700), LIM_OK);
    CHECK(limw_sources(w) < 200); /* the refused /64s left no entries */
    limw_free(w);
}

/* gate_bind, the way a single instance binds new ids: the attack of the review (600 /64s of one
 * /48 binding 12000 ids in an hour) gets LIM_SITE_FACTOR x --new-ids-per-hour. */
static void t_gate_site(void)
{
    struct gate g;
    struct gate_cfg cfg = {.max_ids = 100000, .new_ids_per_hour = 20};
    char err[300], msg[300], id[64];
    unsigned char key[32];
    unsigned ok = 0, n = 0;
    if (!CHECK_INT(gate_init(&g, &cfg, err, sizeof err), 0))
        return;
    for (unsigned net = 0; net < 600; net++) {
        struct sockaddr_storage ss = addr6_in_site(net);
        for (unsigned k = 0; k < 20; k++) {
            snprintf(id, sizeof id, "squat-%u", n++);
            randombytes_buf(key, sizeof key);
            ok += gate_bind(&g, id, key, (struct sockaddr *)&ss, 1000 + net, false, msg,
                            sizeof msg) == PC_UNKNOWN;
        }
    }
    CHECK_MSG(ok == 20 * LIM_SITE_FACTOR, "one /48 bound %u new ids in an hour, want %u", ok,
              20 * LIM_SITE_FACTOR);
    gate_free(&g);
}

CHECK_MAIN(TEST(t_bucket), TEST(t_per_source), TEST(t_per_site), TEST(t_files), TEST(t_seen), TEST(t_window), TEST(t_db_torn_middle), TEST(t_db_failed_append),
           TEST(t_window_full), TEST(t_window_site), TEST(t_gate_site))
