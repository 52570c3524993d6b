/* peer/trust.c, --remember after a code session (trust_remember, trust_after_shake): the key the
 * code authenticated is added for a peer without a line, nothing happens when it is already
 * there, and another key already recorded is never overwritten (a distinct status, and the
 * message tells the user what to do). The file is read again, not taken from trust_prepare's
 * snapshot, and a line for the peer that cannot be read stops the write (fail closed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "peer/trust.h"

static char dir[] = "/tmp/tcpunch-test-trust.XXXXXX";
static char path[300];
static unsigned char pk1[32], pk2[32];
static char k1[ID_PK_B64_SIZE], k2[ID_PK_B64_SIZE];

static void setup(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    if (sodium_init() < 0 || !mkdtemp(dir))
        exit(1);
    snprintf(path, sizeof path, "%s/known_peers", dir);
    for (int i = 0; i < 32; i++) {
        pk1[i] = (unsigned char)(i + 1);
        pk2[i] = (unsigned char)(0x80 + i);
    }
    id_pk_encode(pk1, k1, sizeof k1);
    id_pk_encode(pk2, k2, sizeof k2);
}

static void trust_for(struct shake_trust *t, const char *name)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->known_path, sizeof t->known_path, "%s", path);
}

/* The whole file ("" when it does not exist). */
static char *slurp(void)
{
    static char buf[8192];
    FILE *f = fopen(path, "rb");
    size_t n = 0;
    if (f) {
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
    return buf;
}

static void write_file(const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        exit(1);
    fputs(text, f);
    fclose(f);
}

static void t_three_cases(void)
{
    struct shake_trust t;
    char msg[1400], line[200], before[8192];
    struct stat st;
    setup();
    unlink(path);
    trust_for(&t, "bob");
    /* no line for bob (no file at all): added, the file made 0600 with its header */
    CHECK_INT(trust_remember(&t, pk1, msg, sizeof msg), TRUST_REM_ADDED);
    CHECK(strstr(msg, "remembered bob") && strstr(msg, "SHA256:") && strstr(msg, path));
    snprintf(line, sizeof line, "\nbob %s\n", k1);
    CHECK(strstr(slurp(), line) != NULL);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    /* the same key again: nothing written */
    snprintf(before, sizeof before, "%s", slurp());
    CHECK_INT(trust_remember(&t, pk1, msg, sizeof msg), TRUST_REM_KNOWN);
    CHECK(strstr(msg, "already in") != NULL);
    CHECK_STR(slurp(), before);
    /* another key: not overwritten, not added, the distinct status and the user's message */
    CHECK_INT(trust_remember(&t, pk2, msg, sizeof msg), TRUST_REM_OTHER);
    CHECK_MSG(strstr(msg, "known_peers already has another key for bob") && strstr(msg, "line 2") &&
                  strstr(msg, "not changed (remove the line to replace it)"),
              "message: %s", msg);
    CHECK_STR(slurp(), before);
    CHECK(strstr(slurp(), k2) == NULL);
}

/* Other peers' lines do not count and stay; a second key of bob's among several is KNOWN. */
static void t_others(void)
{
    struct shake_trust t;
    char msg[1400], text[600], want[800];
    setup();
    snprintf(text, sizeof text, "# mine\nalice %s\ncarol %s", k2, k1); /* no final newline */
    write_file(text);
    trust_for(&t, "bob");
    CHECK_INT(trust_remember(&t, pk1, msg, sizeof msg), TRUST_REM_ADDED);
    snprintf(want, sizeof want, "%s\nbob %s\n", text, k1);
    CHECK_STR(slurp(), want);
    snprintf(text, sizeof text, "bob %s\nbob %s\n", k2, k1);
    write_file(text);
    CHECK_INT(trust_remember(&t, pk1, msg, sizeof msg), TRUST_REM_KNOWN);
    CHECK_INT(trust_remember(&t, pk2, msg, sizeof msg), TRUST_REM_KNOWN);
    CHECK_STR(slurp(), text);
}

/* The file as it is now, not as trust_prepare saw it: a line for bob written since (another
 * process, the user) is respected. */
static void t_reread(void)
{
    struct shake_trust t;
    char msg[1400], text[300];
    setup();
    unlink(path);
    trust_for(&t, "bob"); /* nknown 0: the snapshot says bob has no line */
    snprintf(text, sizeof text, "bob %s\n", k2);
    write_file(text);
    CHECK_INT(trust_remember(&t, pk1, msg, sizeof msg), TRUST_REM_OTHER);
    CHECK(strstr(msg, "line 1") != NULL);
    CHECK_STR(slurp(), text);
}

/* A line that could be bob's but cannot be read, or a file that cannot be written: an error
 * with the reason, and the file unchanged. */
static void t_errors(void)
{
    struct shake_trust t;
    char msg[1400], text[300];
    setup();
    snprintf(text, sizeof text, "alice %s\nbob not-a-key\n", k2);
    write_file(text);
    trust_for(&t, "bob");
    CHECK_INT(trust_remember(&t, pk1, msg, sizeof msg), TRUST_REM_ERROR);
    CHECK_MSG(strstr(msg, "not recorded") && strstr(msg, ":2: malformed"), "message: %s", msg);
    CHECK_STR(slurp(), text);
    snprintf(t.known_path, sizeof t.known_path, "%s/no/such/dir/known_peers", dir);
    CHECK_INT(trust_remember(&t, pk1, msg, sizeof msg), TRUST_REM_ERROR);
    CHECK(strstr(msg, "cannot write") != NULL);
    /* a name known_peers cannot hold */
    unlink(path);
    trust_for(&t, "bob smith");
    CHECK_INT(trust_remember(&t, pk1, msg, sizeof msg), TRUST_REM_ERROR);
    CHECK_STR(slurp(), "");
}

/* At the end of a handshake: a code session records only with --remember; any other session
 * records on first use as before. */
static void t_after_shake(void)
{
    struct shake_trust t;
    char line[200];
    setup();
    unlink(path);
    trust_for(&t, "bob");
    snprintf(line, sizeof line, "bob %s\n", k1);
    trust_after_shake(&t, pk1, true, false);
    CHECK_STR(slurp(), "");
    trust_after_shake(&t, pk1, true, true);
    CHECK(strstr(slurp(), line) != NULL);
    unlink(path);
    trust_after_shake(&t, pk1, false, false); /* trust on first use, as ever */
    CHECK(strstr(slurp(), line) != NULL);
    /* --remember never replaces: bob keeps pk1 */
    trust_after_shake(&t, pk2, true, true);
    CHECK(strstr(slurp(), k2) == NULL);
    unlink(path);
    rmdir(dir);
}

CHECK_MAIN(TEST(t_three_cases), TEST(t_others), TEST(t_reread), TEST(t_errors), TEST(t_after_shake))
