/* Identities and known_peers: creation with private modes, loading the same key again, the
 * ssh-like refusal of a readable secret file, damaged files, the encodings users see, signatures,
 * and the known_peers lookup and append. */
#include "check.h"
#include "common/identity.h"
#include "common/known.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_root[256];

/* A fresh directory under the test's temporary root (not created: the identity code must). */
static const char *fresh_home(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s/tcpunch", tmp_root, name);
    return path;
}

static int mode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static void t_create_then_load(void)
{
    const char *home = fresh_home("create");
    struct identity a, b;
    bool created = false;
    char err[512] = "", path[600], pub[100] = "", want[ID_PK_B64_SIZE + 1];
    FILE *f;

    if (!CHECK_MSG(id_load_or_create(home, &a, &created, err, sizeof err) == 0, "%s", err))
        return;
    CHECK(created);
    CHECK_INT(mode_of(home), 0700);
    snprintf(path, sizeof path, "%s/identity", home);
    CHECK_INT(mode_of(path), 0600);
    snprintf(path, sizeof path, "%s/identity.pub", home);
    CHECK_INT(mode_of(path), 0644);
    if ((f = fopen(path, "r"))) {
        CHECK(fgets(pub, sizeof pub, f) != NULL);
        fclose(f);
    }
    id_pk_encode(a.pk, want, sizeof want);
    strcat(want, "\n");
    CHECK_STR(pub, want);

    CHECK(id_load_or_create(home, &b, &created, err, sizeof err) == 0);
    CHECK(!created);
    CHECK(memcmp(a.pk, b.pk, sizeof a.pk) == 0);
    CHECK(memcmp(a.sk, b.sk, sizeof a.sk) == 0);

    /* a lost identity.pub comes back */
    unlink(path);
    CHECK(id_load_or_create(home, &b, &created, err, sizeof err) == 0);
    CHECK_INT(mode_of(path), 0644);
}

static void t_env_home(void)
{
    const char *home = fresh_home("env");
    char dir[600], err[300];
    struct identity a;
    bool created;
    setenv("TCPUNCH_HOME", home, 1);
    CHECK(id_home(NULL, dir, sizeof dir, err, sizeof err) == 0);
    CHECK_STR(dir, home);
    CHECK(id_load_or_create(NULL, &a, &created, err, sizeof err) == 0);
    CHECK(created);
    snprintf(dir, sizeof dir, "%s/identity", home);
    CHECK_INT(mode_of(dir), 0600);
    unsetenv("TCPUNCH_HOME");
    setenv("HOME", "/nonexistent-home", 1);
    CHECK(id_home(NULL, dir, sizeof dir, err, sizeof err) == 0);
    CHECK_STR(dir, "/nonexistent-home/.config/tcpunch");
}

static void t_refuse_readable(void)
{
    const char *home = fresh_home("perm");
    struct identity a;
    bool created;
    char err[600] = "", path[600];
    const mode_t bad[] = {0644, 0640, 0604, 0660};

    CHECK(id_load_or_create(home, &a, &created, err, sizeof err) == 0);
    snprintf(path, sizeof path, "%s/identity", home);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        chmod(path, bad[i]);
        err[0] = '\0';
        CHECK_MSG(id_load_or_create(home, &a, &created, err, sizeof err) < 0, "mode %o accepted",
                  (unsigned)bad[i]);
        CHECK_MSG(strstr(err, "too open") && strstr(err, "chmod 600") && strstr(err, path),
                  "message: %s", err);
    }
    chmod(path, 0400); /* read-only for the owner is fine, as for ssh */
    CHECK_MSG(id_load_or_create(home, &a, &created, err, sizeof err) == 0, "%s", err);
}

static void t_damaged(void)
{
    const char *home = fresh_home("damaged");
    struct identity a, other;
    bool created;
    char err[600] = "", path[600], text[200];

    CHECK(id_load_or_create(home, &a, &created, err, sizeof err) == 0);
    snprintf(path, sizeof path, "%s/identity", home);
    write_file(path, "not base64 at all\n", 0600);
    CHECK(id_load_or_create(home, &a, &created, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "not a tcpunch secret key") != NULL, "%s", err);
    write_file(path, "", 0600);
    CHECK(id_load_or_create(home, &a, &created, err, sizeof err) < 0);
    /* a secret key whose public half belongs to another key pair */
    crypto_sign_keypair(other.pk, other.sk);
    memset(other.sk + 32, 0x55, 32);
    id_b64_encode(other.sk, sizeof other.sk, text, sizeof text);
    strcat(text, "\n");
    write_file(path, text, 0600);
    CHECK(id_load_or_create(home, &a, &created, err, sizeof err) < 0);
    CHECK_MSG(strstr(err, "damaged") != NULL, "%s", err);
}

static void t_encodings(void)
{
    unsigned char pk[32], back[32];
    char b64[ID_PK_B64_SIZE], fp[ID_FP_SIZE];
    for (int i = 0; i < 32; i++)
        pk[i] = (unsigned char)i;
    CHECK(id_pk_encode(pk, b64, sizeof b64) == 0);
    CHECK_STR(b64, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    CHECK(id_pk_encode(pk, b64, 10) < 0);
    CHECK(id_pk_decode(b64, back) == 0);
    CHECK(memcmp(pk, back, 32) == 0);
    id_fingerprint(pk, fp, sizeof fp);
    CHECK_STR(fp, "SHA256:Yw3NKWbEM2aRElRIu7JbT/QSpJxzLbLIq8G4WBvXEN0");
    memset(pk, 0, sizeof pk);
    id_fingerprint(pk, fp, sizeof fp);
    CHECK_STR(fp, "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU");

    CHECK(id_pk_decode("", back) < 0);
    CHECK(id_pk_decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", back) < 0); /* no pad */
    CHECK(id_pk_decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=x", back) < 0);
    CHECK(id_pk_decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh!=", back) < 0);
    CHECK(id_pk_decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd", back) < 0);
    CHECK(id_b64_decode("AAEC", back, sizeof back, 0) == 3);
    CHECK(id_b64_decode("AAEC", back, sizeof back, 4) < 0);
}

static void t_sign_verify(void)
{
    struct identity a, b;
    unsigned char sig[crypto_sign_BYTES];
    const char msg[] = "tcpunch";
    crypto_sign_keypair(a.pk, a.sk);
    crypto_sign_keypair(b.pk, b.sk);
    id_sign(&a, msg, sizeof msg, sig);
    CHECK(id_verify(a.pk, msg, sizeof msg, sig));
    CHECK(!id_verify(b.pk, msg, sizeof msg, sig));
    CHECK(!id_verify(a.pk, msg, sizeof msg - 1, sig));
    sig[10] ^= 1;
    CHECK(!id_verify(a.pk, msg, sizeof msg, sig));
}

static void t_known_peers(void)
{
    char path[600], err[300], text[400], k1[ID_PK_B64_SIZE];
    unsigned char pk1[32], pk2[32], pk3[32];
    struct kp_entry e[KP_MAX_KEYS];
    FILE *f;
    crypto_sign_keypair(pk1, (unsigned char[64]){0});
    crypto_sign_keypair(pk2, (unsigned char[64]){0});
    crypto_sign_keypair(pk3, (unsigned char[64]){0});
    snprintf(path, sizeof path, "%s/known_peers", tmp_root);

    CHECK_INT(kp_find(path, "bob", e, KP_MAX_KEYS, err, sizeof err), 0); /* no file yet */
    CHECK(kp_add(path, "bob", pk1, err, sizeof err) == 0);
    CHECK_INT(mode_of(path), 0600);
    CHECK(kp_add(path, "127.0.0.1:4000", pk2, err, sizeof err) == 0);
    CHECK(kp_add(path, "bad name", pk2, err, sizeof err) < 0);
    CHECK(kp_add(path, "#x", pk2, err, sizeof err) < 0);
    /* comments, blank lines and another peer's malformed lines are skipped (a malformed line
     * that could be bob's refuses bob: tests/unit/test_known.c); a second key for bob is
     * allowed */
    id_pk_encode(pk3, k1, sizeof k1);
    snprintf(text, sizeof text, "\n   \n# a comment\ndave notakey\ndave\nbob %s trailing words\n",
             k1);
    if ((f = fopen(path, "a"))) {
        fputs(text, f);
        fclose(f);
    }
    CHECK_INT(kp_find(path, "bob", e, KP_MAX_KEYS, err, sizeof err), 2);
    CHECK_INT(e[0].line, 2); /* after the header comment */
    CHECK(memcmp(e[0].pk, pk1, 32) == 0);
    CHECK_INT(e[1].line, 9);
    CHECK_INT(kp_match(e, 2, pk1), 0);
    CHECK_INT(kp_match(e, 2, pk3), 1);
    CHECK_INT(kp_match(e, 2, pk2), -1);
    CHECK_INT(kp_find(path, "127.0.0.1:4000", e, KP_MAX_KEYS, err, sizeof err), 1);
    CHECK(memcmp(e[0].pk, pk2, 32) == 0);
    CHECK_INT(kp_find(path, "alice", e, KP_MAX_KEYS, err, sizeof err), 0);
    CHECK_INT(kp_find(path, "bo", e, KP_MAX_KEYS, err, sizeof err), 0);
    chmod(path, 0);
    if (geteuid() != 0) /* root reads anyway */
        CHECK_INT(kp_find(path, "bob", e, KP_MAX_KEYS, err, sizeof err), -1);
    chmod(path, 0600);
}

static void setup(void)
{
    snprintf(tmp_root, sizeof tmp_root, "%s/tcpunch-test-identity.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_root) || sodium_init() < 0) {
        perror("setup");
        exit(1);
    }
    umask(022);
}

static void t_cleanup(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    CHECK(system(cmd) == 0);
}

static void t_setup(void)
{
    setup();
}

CHECK_MAIN(TEST(t_setup), TEST(t_create_then_load), TEST(t_env_home), TEST(t_refuse_readable),
           TEST(t_damaged), TEST(t_encodings), TEST(t_sign_verify), TEST(t_known_peers),
           TEST(t_cleanup))
