/* common/known.c: known_peers fails closed. A line that could be a pin for the peer but cannot
 * be read refuses the lookup (naming file:line) instead of being skipped, since skipping it
 * would trust whatever key comes next. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/identity.h"
#include "common/known.h"

static char tmpl[] = "/tmp/tcpunch-test-known.XXXXXX";
static char path[300];
static unsigned char pk1[32], pk2[32];
static char k1[ID_PK_B64_SIZE], k2[ID_PK_B64_SIZE];

static void write_file(const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (CHECK(f)) {
        fwrite(text, 1, n, f);
        fclose(f);
    }
}

/* kp_find for name over the file holding text; err gets the message. */
static int find(const char *text, const char *name, struct kp_entry *e, char *err, size_t len)
{
    write_file(text, strlen(text));
    err[0] = '\0';
    return kp_find(path, name, e, KP_MAX_KEYS, err, len);
}

static void t_good(void)
{
    struct kp_entry e[KP_MAX_KEYS];
    char text[600], err[400];
    snprintf(text, sizeof text, "# comment\n\nalice %s\nbob %s a comment\r\nbob %s\n", k1, k2, k1);
    CHECK_INT(find(text, "bob", e, err, sizeof err), 2);
    CHECK_INT(e[0].line, 4);
    CHECK(memcmp(e[0].pk, pk2, 32) == 0 && memcmp(e[1].pk, pk1, 32) == 0);
    CHECK_INT(find(text, "carol", e, err, sizeof err), 0);
    /* another peer's malformed line is that peer's problem */
    snprintf(text, sizeof text, "alice garbage\nbob %s\n", k2);
    CHECK_INT(find(text, "bob", e, err, sizeof err), 1);
    unlink(path);
    CHECK_INT(kp_find(path, "bob", e, KP_MAX_KEYS, err, sizeof err), 0);
}

static void t_malformed(void)
{
    struct kp_entry e[KP_MAX_KEYS];
    char text[4000], err[400], want[400];
    /* bob's pin, mangled (a truncated key), before a valid-looking later line */
    snprintf(text, sizeof text, "# pins\nbob %.20s\nbob %s\n", k1, k2);
    CHECK_INT(find(text, "bob", e, err, sizeof err), -2);
    snprintf(want, sizeof want, "%s:2:", path);
    CHECK_MSG(strstr(err, want) && strstr(err, "malformed"), "err: %s", err);
    /* a name without a key */
    CHECK_INT(find("bob\n", "bob", e, err, sizeof err), -2);
    /* a line whose name cannot be read could be anybody's */
    snprintf(text, sizeof text, "b\x01ob %.10s\nbob %s\n", k1, k2);
    CHECK_INT(find(text, "bob", e, err, sizeof err), -2);
    /* over-long: its start may be bob's pin */
    memset(text, 0, sizeof text);
    snprintf(text, sizeof text, "bob %s ", k1);
    memset(text + strlen(text), 'x', 1500);
    strcat(text, "\nbob ");
    strcat(text, k2);
    strcat(text, "\n");
    CHECK_INT(find(text, "bob", e, err, sizeof err), -2);
    snprintf(want, sizeof want, "%s:1: a line over", path);
    CHECK_MSG(strstr(err, want) != NULL, "err: %s", err);
    /* a long comment is still a comment */
    memset(text, 0, sizeof text);
    text[0] = '#';
    memset(text + 1, 'c', 2000);
    strcat(text, "\nbob ");
    strcat(text, k2);
    strcat(text, "\n");
    CHECK_INT(find(text, "bob", e, err, sizeof err), 1);
}

static void t_nul(void)
{
    struct kp_entry e[KP_MAX_KEYS];
    char text[400], err[400], want[400];
    int n = snprintf(text, sizeof text, "bob%cgarbage\nbob %s\n", 0, k2);
    write_file(text, (size_t)n);
    CHECK_INT(kp_find(path, "bob", e, KP_MAX_KEYS, err, sizeof err), -2);
    snprintf(want, sizeof want, "%s:1: a NUL", path);
    CHECK_MSG(strstr(err, want) != NULL, "err: %s", err);
}

/* More keys than a lookup keeps: refused rather than checking only some of them. */
static void t_too_many(void)
{
    struct kp_entry e[KP_MAX_KEYS];
    char text[4000] = "", err[400];
    for (int i = 0; i <= KP_MAX_KEYS; i++) {
        strcat(text, "bob ");
        strcat(text, i == KP_MAX_KEYS ? k2 : k1);
        strcat(text, "\n");
    }
    CHECK_INT(find(text, "bob", e, err, sizeof err), -2);
    CHECK_MSG(strstr(err, ":9: more than 8 keys") != NULL, "err: %s", err);
}

/* kp_add after a last line without its newline starts a line of its own. */
static void t_add_torn(void)
{
    struct kp_entry e[KP_MAX_KEYS];
    char text[400], err[400];
    snprintf(text, sizeof text, "alice %s", k1);
    write_file(text, strlen(text));
    CHECK_INT(kp_add(path, "bob", pk2, err, sizeof err), 0);
    CHECK_INT(kp_find(path, "bob", e, KP_MAX_KEYS, err, sizeof err), 1);
    CHECK_INT(e[0].line, 2);
    CHECK_INT(kp_find(path, "alice", e, KP_MAX_KEYS, err, sizeof err), 1);
}

int main(int argc, char **argv)
{
    static const struct check_test tests[] = {TEST(t_good), TEST(t_malformed), TEST(t_nul),
                                              TEST(t_too_many), TEST(t_add_torn)};
    char *dir;
    int rc;
    if (sodium_init() < 0 || !(dir = mkdtemp(tmpl)))
        return 1;
    snprintf(path, sizeof path, "%s/known_peers", dir);
    randombytes_buf(pk1, sizeof pk1);
    randombytes_buf(pk2, sizeof pk2);
    id_pk_encode(pk1, k1, sizeof k1);
    id_pk_encode(pk2, k2, sizeof k2);
    rc = check_run_(tests, sizeof tests / sizeof tests[0], argc, argv);
    unlink(path);
    rmdir(dir);
    return rc;
}
