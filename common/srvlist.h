/* Server lists: "HOST:PORT[,HOST:PORT...]" as --server (and the load generator) take them. A
 * name that resolves to several addresses stands for as many servers. */
#ifndef TP_SRVLIST_H
#define TP_SRVLIST_H

#include <stddef.h>
#include <sys/socket.h>

#define SL_MAX 16   /* servers in one list, a name's addresses included */
#define SL_NAME 320 /* "HOST:PORT" as given, and " (ADDR)" when a name has several */
#define SL_ITEM 256 /* one item as given */

struct sl_server {
    char name[SL_NAME]; /* how messages name it */
    struct sockaddr_storage addr;
};

struct sl_list {
    int n;     /* servers resolved */
    int items; /* items in the list as given */
    struct sl_server s[SL_MAX];
};

/* Checks the shape of a list (no name lookup): items separated by commas, blanks around them
 * ignored, none empty, each HOST:PORT with a port 1..65535, at most SL_MAX of them. Returns 0,
 * or -1 with the reason in err. */
int sl_check(const char *list, char *err, size_t errlen);

/* Resolves a checked list in its order. Items that do not resolve are left out and their
 * reasons joined (with "; ") in skipped. Returns out->n: 0 when nothing resolved. */
int sl_resolve(const char *list, struct sl_list *out, char *skipped, size_t skippedlen);

/* Appends "; " (unless s is empty) and add to s, cutting at len. */
void sl_join(char *s, size_t len, const char *add);

#endif
