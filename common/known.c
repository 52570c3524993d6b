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

/* Splits "name key [comment]" in place; 0 for a comment or blank line, 1 parsed, -1 bad. */
static int kp_parse(char *line, char **name, unsigned char *pk)
{
    char *save = NULL, *key;
    line[strcspn(line, "\r\n")] = '\0';
    *name = strtok_r(line, " \t", &save);
    if (!*name || (*name)[0] == '#')
        return 0;
    key = strtok_r(NULL, " \t", &save);
    if (!key || id_pk_decode(key, pk) < 0)
        return -1;
    return 1;
}

int kp_find(const char *path, const char *name, struct kp_entry *out, int max, char *err,
            size_t errlen)
{
    char line[KP_LINE];
    FILE *f = fopen(path, "r");
    int no = 0, found = 0;

    if (!f && errno == ENOENT)
        return 0;
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        unsigned char pk[crypto_sign_PUBLICKEYBYTES];
        char *n;
        no++;
        if (!strchr(line, '\n') && !feof(f)) {
            /* an over-long line cannot be one of ours: skip the rest of it */
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
            continue;
        }
        if (kp_parse(line, &n, pk) <= 0 || strcmp(n, name) != 0)
            continue;
        if (found < max) {
            out[found].line = no;
            memcpy(out[found].pk, pk, sizeof pk);
        }
        found++;
    }
    if (ferror(f)) {
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
    char key[ID_PK_B64_SIZE], line[KP_LINE];
    struct stat st;
    int fd, n, rc = -1;

    if (!kp_valid_name(name)) {
        snprintf(err, errlen, "cannot record \"%s\" in %s: not a valid name", name, path);
        return -1;
    }
    id_pk_encode(pk, key, sizeof key);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    /* O_APPEND and one write per line: two peers recording at once cannot mix their lines */
    n = snprintf(line, sizeof line, "%s%s %s\n",
                 st.st_size == 0 ? "# tcpunch known peers: NAME BASE64-KEY, one per line "
                                   "(README, \"Identities\")\n"
                                 : "",
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
