/* tcpunch id: our public key and its fingerprint, for the other side's --peer-key or to compare
 * with what its first contact printed. */
#include <stdio.h>

#include "common/identity.h"
#include "peer/commands.h"
#include "peer/options.h"

int cmd_id(const struct peer_opts *o, int argc, char **argv)
{
    char key[ID_PK_B64_SIZE], fp[ID_FP_SIZE], dir[512], err[300];
    if (argc > 0)
        return opts_bad("id takes no arguments (got \"%s\")", argv[0]);
    if (id_home(NULL, dir, sizeof dir, err, sizeof err) < 0)
        snprintf(dir, sizeof dir, "?");
    id_pk_encode(o->ident->pk, key, sizeof key);
    id_fingerprint(o->ident->pk, fp, sizeof fp);
    /* base64 and the home path are printed as they are: the key alphabet needs no escaping, and
     * the path is escaped for JSON below */
    if (o->json) {
        printf("{\"key\":\"%s\",\"fingerprint\":\"%s\",\"file\":\"", key, fp);
        for (const char *p = dir; *p; p++) {
            unsigned char ch = (unsigned char)*p;
            if (ch == '"' || ch == '\\')
                printf("\\%c", ch);
            else if (ch < 0x20)
                printf("\\u%04x", ch);
            else
                putchar(ch);
        }
        printf("/identity.pub\"}\n");
    } else {
        printf("key:         %s\nfingerprint: %s\nfile:        %s/identity.pub\n", key, fp, dir);
    }
    return fflush(stdout) == 0 ? EXIT_DONE : EXIT_LOCAL;
}
