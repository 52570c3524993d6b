#include "common/known.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/identity.h"

#define KP_LINE 1024

int kp_valid_name(const char *name)
{
    size_t n = 0;
    for (; name[n]; n++)
        if ((unsigned char)name[n] <= ' ' || (unsigned char)name[n] >= 0x7f || n >= 255)
            return 0;
    return n > 0 && name[0] != '#';
}

/* One line of the file: its bytes up to the newline (not kept), how many there were, and
 * whether a NUL was among them. Reads at most cap - 1 bytes into buf; the rest of an over-long
 * line is consumed and counted. Returns 0 at the end of the file, 1 otherwise. */
static int kp_getline(FILE *f, char *buf, size_t cap, size_t *len, int *nul)
{
    int ch, any = 0;
    *len = 0;
    *nul = 0;
    while ((ch = getc(f)) != EOF) {
        any = 1;
        if (ch == '\n')
            break;
        if (ch == '\0')
            *nul = 1;
        if (*len < cap - 1)
            buf[*len] = (char)ch;
        (*len)++;
    }
    buf[*len < cap - 1 ? *len : cap - 1] = '\0';
    return any;
}

/* Splits "name key [comment]" in place; 0 for a comment or blank line, 1 parsed, -1 bad. */
static int kp_parse(char *line, char **name, unsigned char *pk)
{
    char *save = NULL, *key;
    line[strcspn(line, "\r")] = '\0';
    *name = strtok_r(line, " \t", &save);
    if (!*name || (*name)[0] == '#')
        return 0;
    key = strtok_r(NULL, " \t", &save);
    if (!key || id_pk_decode(key, pk) < 0)
        return -1;
    return 1;
}

/* Whether a line that cannot be read as a pin could have been one for name: then skipping it
 * would trust whatever key comes next, so the lookup fails instead (fail closed). */
static int kp_could_be(const char *line, const char *name)
{
    char copy[KP_LINE], *save = NULL, *tok;
    snprintf(copy, sizeof copy, "%s", line);
    tok = strtok_r(copy, " \t\r", &save);
    return !tok || strcmp(tok, name) == 0 || !kp_valid_name(tok);
}

int kp_find(const char *path, const char *name, struct kp_entry *out, int max, char *err,
            size_t errlen)
{
    char line[KP_LINE];
    FILE *f = fopen(path, "r");
    int no = 0, found = 0, nul;
    size_t len;

    if (!f && errno == ENOENT)
        return 0;
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    while (found >= 0 && kp_getline(f, line, sizeof line, &len, &nul)) {
        unsigned char pk[crypto_sign_PUBLICKEYBYTES];
        const char *lead = line + strspn(line, " \t");
        char *n;
        int r;
        no++;
        /* a NUL hides what follows it from every reader: nobody can tell whose line it is */
        if (nul) {
            snprintf(err, errlen, "%s:%d: a NUL byte in the line", path, no);
            found = -2;
            break;
        }
        if (lead[0] == '#')
            continue; /* a comment, of any length */
        if (len >= sizeof line) {
            snprintf(err, errlen, "%s:%d: a line over %d bytes", path, no, KP_LINE - 1);
            found = -2;
            break;
        }
        if (kp_could_be(line, name) && (r = kp_parse(line, &n, pk)) != 0) {
            if (r < 0) {
                snprintf(err, errlen, "%s:%d: malformed line (want \"NAME BASE64-KEY\")", path,
                         no);
                found = -2;
                break;
            }
            if (strcmp(n, name) != 0)
                continue;
            if (found >= max) {
                snprintf(err, errlen, "%s:%d: more than %d keys for %s", path, no, max, name);
                found = -2;
                break;
            }
            out[found].line = no;
            memcpy(out[found].pk, pk, sizeof pk);
            found++;
        }
    }
    if (found >= 0 && ferror(f)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        found = -1;
    }
    fclose(f);
    return found;
}

int kp_match(const struct kp_entry *e, int n, const unsigned char *pk)
{
    for (int i = 0; i < n; i++)
        if (sodium_memcmp(e[i].pk, pk, sizeof e[i].pk) == 0)
            return i;
    return -1;
}

int kp_add(const char *path, const char *name, const unsigned char *pk, char *err, size_t errlen)
{
    char key[ID_PK_B64_SIZE], line[KP_LINE], last = '\n';
    const char *newline = "";
    struct stat st;
    int fd, n, rc = -1;

    if (!kp_valid_name(name)) {
        snprintf(err, errlen, "cannot record \"%s\" in %s: not a valid name", name, path);
        return -1;
    }
    id_pk_encode(pk, key, sizeof key);
    fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    /* a last line without its newline (a torn write, an editor) must not swallow ours */
    if (st.st_size > 0 && (pread(fd, &last, 1, st.st_size - 1) != 1 || last != '\n'))
        newline = "\n";
    /* O_APPEND and one write per line: two peers recording at once cannot mix their lines */
    n = snprintf(line, sizeof line, "%s%s %s\n",
                 st.st_size == 0 ? "# tcpunch known peers: NAME BASE64-KEY, one per line "
                                   "(README, \"Identities\")\n"
                                 : newline,
                 name, key);
    if (n < 0 || (size_t)n >= sizeof line || write(fd, line, (size_t)n) != n || fsync(fd) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}
