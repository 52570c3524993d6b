#include "common/srvlist.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/endpoint.h"

static bool sl_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* The next item of *p into item (blanks trimmed), *p moved past its comma. Returns 1 for an
 * item, 0 at the end of the list, -1 when the item is too long. */
static int sl_next(const char **p, char *item, size_t len)
{
    const char *s = *p, *end;
    size_t n;
    if (!s)
        return 0;
    end = strchr(s, ',');
    *p = end ? end + 1 : NULL;
    if (!end)
        end = s + strlen(s);
    while (s < end && sl_blank(*s))
        s++;
    while (end > s && sl_blank(end[-1]))
        end--;
    n = (size_t)(end - s);
    if (n >= len)
        return -1;
    memcpy(item, s, n);
    item[n] = '\0';
    return 1;
}

int sl_check(const char *list, char *err, size_t errlen)
{
    char item[SL_ITEM], why[200];
    const char *p = list;
    int k = 0, rc;
    while ((rc = sl_next(&p, item, sizeof item)) != 0) {
        if (rc < 0) {
            snprintf(err, errlen, "item %d of \"%.80s\" is too long", k + 1, list);
            return -1;
        }
        if (++k > SL_MAX) {
            snprintf(err, errlen, "\"%.80s\" lists more than %d servers", list, SL_MAX);
            return -1;
        }
        if (!item[0]) {
            snprintf(err, errlen, "\"%.80s\": item %d is empty (HOST:PORT[,HOST:PORT...])", list,
                     k);
            return -1;
        }
        if (ep_check_syntax(item, false, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s", why);
            return -1;
        }
    }
    if (k == 0) {
        snprintf(err, errlen, "%s", "is empty (HOST:PORT[,HOST:PORT...])");
        return -1;
    }
    return 0;
}

void sl_join(char *s, size_t len, const char *add)
{
    size_t n = strlen(s);
    if (n + 1 < len)
        snprintf(s + n, len - n, "%s%s", n ? "; " : "", add);
}

/* One item: all of its addresses, each a server of its own. */
static void sl_add(struct sl_list *out, const char *item, char *skipped, size_t skippedlen)
{
    struct sockaddr_storage a[SL_MAX];
    char err[300], ep[EP_STRLEN];
    int n = ep_resolve_all(item, false, a, SL_MAX - out->n, err, sizeof err);
    if (n < 0) {
        sl_join(skipped, skippedlen, err);
        return;
    }
    for (int i = 0; i < n; i++) {
        struct sl_server *s = &out->s[out->n++];
        s->addr = a[i];
        /* a name with one address keeps the name alone, as the messages always had it */
        if (n == 1)
            snprintf(s->name, sizeof s->name, "%s", item);
        else
            snprintf(s->name, sizeof s->name, "%s (%s)", item,
                     ep_format((const struct sockaddr *)&a[i], ep, sizeof ep));
    }
}

int sl_resolve(const char *list, struct sl_list *out, char *skipped, size_t skippedlen)
{
    char item[SL_ITEM];
    const char *p = list;
    memset(out, 0, sizeof *out);
    if (skippedlen)
        skipped[0] = '\0';
    while (sl_next(&p, item, sizeof item) > 0 && out->items < SL_MAX) {
        out->items++;
        if (item[0] && out->n < SL_MAX)
            sl_add(out, item, skipped, skippedlen);
    }
    return out->n;
}
