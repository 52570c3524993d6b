#include "peer/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/endpoint.h"
#include "common/identity.h"
#include "common/log.h"
#include "common/srvlist.h"
#include "peer/exit.h"
#include "peer/options.h"

#define CFG_LINE 4096

/* The config keys, indexed by enum cfg_key; each is also the long option it stands for. */
static const char *const cfg_names[CFG_NKEYS] = {
    [CFG_SERVER] = "server",
    [CFG_ID] = "id",
    [CFG_PORT] = "port",
    [CFG_TIMEOUT] = "timeout",
    [CFG_DIRECT_TIMEOUT] = "direct-timeout",
    [CFG_RELAY] = "relay",
    [CFG_SECRET_FILE] = "secret-file",
    [CFG_VERBOSE] = "verbose",
    [CFG_QUIET] = "quiet",
    [CFG_NO_RETRY] = "no-retry",
    [CFG_DIR] = "dir",
    [CFG_BIRTHDAY_K] = "birthday-k",
    [CFG_BIRTHDAY_M] = "birthday-m",
    [CFG_RESUME_TIMEOUT] = "resume-timeout",
    [CFG_RESUME_BUFFER] = "resume-buffer",
    [CFG_RELAY_GRACE] = "relay-grace",
    [CFG_DIRECT_FIRST] = "direct-first",
    [CFG_NO_REPORT] = "no-report",
};

static int cfg_key_of(const char *name)
{
    if (strcmp(name, "no-relay") == 0 || strcmp(name, "relay-only") == 0)
        return CFG_RELAY;
    for (int k = 0; k < CFG_NKEYS; k++)
        if (strcmp(name, cfg_names[k]) == 0)
            return k;
    return -1;
}

void cfg_mark(struct peer_opts *o, const char *name, bool env)
{
    int k = name ? cfg_key_of(name) : -1;
    if (k < 0)
        return;
    /* -v on the command line undoes a "quiet = true" of the file */
    if (k == CFG_VERBOSE && !env && o->cfg.from[CFG_QUIET] == CFG_FROM_FILE) {
        o->quiet = false;
        o->cfg.from[CFG_QUIET] = CFG_FROM_FLAG;
    }
    o->cfg.from[k] = env ? CFG_FROM_ENV : CFG_FROM_FLAG;
}

/* A refusal of the file, "FILE:LINE: why", into err (the caller prints it, as usage errors
 * are printed); returns EXIT_USAGE. */
static int cfg_bad(char *err, size_t errlen, const struct cfg *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int cfg_bad(char *err, size_t errlen, const struct cfg *c, int line, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(err, errlen, "%s:%d: ", c->path, line);
    if (n < 0 || (size_t)n >= errlen)
        n = 0;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return EXIT_USAGE;
}

static int cfg_seconds(const char *v, double lo, double hi, uint64_t *ms)
{
    char *end = NULL;
    double d = strtod(v, &end);
    if (!v[0] || *end || !(d >= lo && d <= hi))
        return -1;
    *ms = (uint64_t)(d * 1000);
    return 0;
}

static int cfg_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
        *out = false;
    else
        return -1;
    return 0;
}

/* Sets one key; -1 when the value is not valid for it (why names what is expected). */
static int cfg_set(struct peer_opts *o, int k, const char *v, const char **why)
{
    struct cfg *c = &o->cfg;
    char err[200];
    char *end = NULL;
    long n;
    switch (k) {
    case CFG_SERVER:
        *why = "not HOST:PORT or a comma-separated list of them";
        if (sl_check(v, err, sizeof err) < 0 || strlen(v) >= sizeof c->server)
            return -1;
        snprintf(c->server, sizeof c->server, "%s", v);
        o->server = c->server;
        return 0;
    case CFG_ID:
        *why = "an id is 1-64 characters of A-Z a-z 0-9 . _ -";
        if (!proto_valid_id(v))
            return -1;
        snprintf(o->id, sizeof o->id, "%s", v);
        return 0;
    case CFG_PORT:
        *why = "not a port number (0-65535)";
        n = strtol(v, &end, 10);
        if (!v[0] || *end || n < 0 || n > 65535)
            return -1;
        o->port = (int)n;
        return 0;
    case CFG_TIMEOUT:
        *why = "not a number of seconds (0.1-3600)";
        return cfg_seconds(v, 0.1, 3600, &o->timeout_ms);
    case CFG_DIRECT_TIMEOUT:
        *why = "not a number of seconds (0-3600)";
        return cfg_seconds(v, 0, 3600, &o->direct_timeout_ms);
    case CFG_RELAY:
        *why = "relay is auto, never (like --no-relay) or only (like --relay-only)";
        if (strcmp(v, "auto") == 0)
            o->path = PROTO_PATH_ANY;
        else if (strcmp(v, "never") == 0)
            o->path = PROTO_PATH_DIRECT;
        else if (strcmp(v, "only") == 0)
            o->path = PROTO_PATH_RELAY;
        else
            return -1;
        return 0;
    case CFG_SECRET_FILE:
    case CFG_DIR:
        *why = "path too long";
        if (strlen(v) >= PATH_MAX)
            return -1;
        snprintf(k == CFG_DIR ? c->dir : c->secret_file, PATH_MAX, "%s", v);
        if (k == CFG_DIR)
            o->dir = c->dir;
        return 0;
    case CFG_VERBOSE:
        *why = "verbose is 0, 1 or 2";
        if (strlen(v) != 1 || v[0] < '0' || v[0] > '2')
            return -1;
        o->verbose = v[0] - '0';
        return 0;
    case CFG_QUIET:
        *why = "not true or false";
        return cfg_bool(v, &o->quiet);
    case CFG_BIRTHDAY_K:
    case CFG_BIRTHDAY_M: {
        bool is_k = k == CFG_BIRTHDAY_K;
        *why = is_k ? "not a number from 0 to 512" : "not a number from 0 to 4096";
        n = strtol(v, &end, 10);
        if (!v[0] || *end || n < 0 || n > (is_k ? PROTO_BDAY_MAX_K : PROTO_BDAY_MAX_M))
            return -1;
        *(is_k ? &o->birthday_k : &o->birthday_m) = (int)n;
        return 0;
    }
    case CFG_RESUME_TIMEOUT:
        *why = "not a number of seconds from 0 to 3600";
        return opts_resume_timeout(v, &o->resume_timeout_s);
    case CFG_RESUME_BUFFER:
        *why = "not a size from 64K to 1G";
        return opts_resume_buffer(v, &o->resume_buffer);
    case CFG_RELAY_GRACE:
        *why = "not auto or a number of ms from 0 to 60000";
        return opts_relay_grace(v, &o->relay_grace_ms);
    case CFG_DIRECT_FIRST:
        *why = "not true or false";
        return cfg_bool(v, &o->direct_first);
    case CFG_NO_REPORT:
        *why = "not true or false";
        return cfg_bool(v, &o->no_report);
    default: /* CFG_NO_RETRY */
        *why = "not true or false";
        return cfg_bool(v, &o->no_retry);
    }
}

static char *cfg_trim(char *s)
{
    char *e = s + strlen(s);
    while (*s && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* One line: blank, "# comment", or "key = value" (a '#' after the value starts a comment). */
static int cfg_line(struct peer_opts *o, char *text, int line, bool *seen, char *err, size_t errlen)
{
    char *eq, *key, *val, *hash = strchr(text, '#');
    const char *why = "";
    int k;
    if (hash)
        *hash = '\0';
    key = cfg_trim(text);
    if (!key[0])
        return EXIT_DONE;
    if (!(eq = strchr(key, '=')))
        return cfg_bad(err, errlen, &o->cfg, line, "\"%s\" is not key = value", key);
    *eq = '\0';
    key = cfg_trim(key);
    val = cfg_trim(eq + 1);
    if ((k = cfg_key_of(key)) < 0 || strcmp(key, cfg_names[k]) != 0)
        return cfg_bad(err, errlen, &o->cfg, line,
                       "unknown key \"%s\" (server, id, port, timeout, direct-timeout, relay, "
                       "secret-file, verbose, quiet, no-retry, dir, birthday-k, birthday-m, "
                       "resume-timeout, resume-buffer, relay-grace, direct-first, no-report)",
                       key);
    if (seen[k])
        return cfg_bad(err, errlen, &o->cfg, line, "%s is set twice", key);
    seen[k] = true;
    if (cfg_set(o, k, val, &why) < 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s = \"%.200s\": %s", key, val, why);
        return cfg_bad(err, errlen, &o->cfg, line, "%s", msg);
    }
    o->cfg.from[k] = CFG_FROM_FILE;
    return EXIT_DONE;
}

int cfg_load(struct peer_opts *o, char *err, size_t errlen)
{
    char dir[PATH_MAX - 8], text[CFG_LINE];
    bool seen[CFG_NKEYS] = {false};
    int line = 0, rc = EXIT_DONE;
    FILE *f;
    /* no home: no config file, and the identity will say what is wrong */
    if (id_home(NULL, dir, sizeof dir, err, errlen) < 0)
        return EXIT_DONE;
    snprintf(o->cfg.path, sizeof o->cfg.path, "%s/config", dir);
    if (!(f = fopen(o->cfg.path, "r"))) {
        if (errno == ENOENT)
            return EXIT_DONE;
        LOG_E("config file %s: %s", o->cfg.path, strerror(errno));
        return EXIT_LOCAL;
    }
    o->cfg.read = true;
    while (rc == EXIT_DONE && fgets(text, sizeof text, f)) {
        line++;
        if (!strchr(text, '\n') && !feof(f))
            rc = cfg_bad(err, errlen, &o->cfg, line, "line over %d bytes", CFG_LINE - 1);
        else
            rc = cfg_line(o, text, line, seen, err, errlen);
    }
    fclose(f);
    return rc;
}

static const char *const cfg_from_text[] = {
    [CFG_FROM_DEFAULT] = "default",
    [CFG_FROM_FILE] = "config file",
    [CFG_FROM_ENV] = "environment",
    [CFG_FROM_FLAG] = "command line",
};

/* A byte count in the largest unit that holds it exactly, as --resume-buffer takes it. */
static void cfg_size(uint64_t n, char *out, size_t cap)
{
    static const char units[] = "GMK";
    for (int i = 0; i < 3; i++) {
        uint64_t u = 1ull << (10 * (3 - i));
        if (n && n % u == 0) {
            snprintf(out, cap, "%llu%c", (unsigned long long)(n / u), units[i]);
            return;
        }
    }
    snprintf(out, cap, "%llu", (unsigned long long)n);
}

static void cfg_row(const struct peer_opts *o, FILE *out, int k, const char *val)
{
    char left[400];
    snprintf(left, sizeof left, "%s = %s", cfg_names[k], val);
    fprintf(out, "%-40s # %s\n", left, cfg_from_text[o->cfg.from[k]]);
}

void cfg_show(const struct peer_opts *o, FILE *out)
{
    static const char *const relay[] = {
        [PROTO_PATH_ANY] = "auto", [PROTO_PATH_DIRECT] = "never", [PROTO_PATH_RELAY] = "only"};
    char v[64];
    fprintf(out, "# config file: %s (%s)\n", o->cfg.path[0] ? o->cfg.path : "none",
            o->cfg.read ? "read" : "not present");
    if (o->server)
        cfg_row(o, out, CFG_SERVER, o->server);
    else
        fprintf(out, "%-40s # not set: --server, TCPUNCH_SERVER or the config file\n",
                "# server =");
    cfg_row(o, out, CFG_ID, o->id);
    snprintf(v, sizeof v, "%d", o->port);
    cfg_row(o, out, CFG_PORT, v);
    snprintf(v, sizeof v, "%g", (double)o->timeout_ms / 1000);
    cfg_row(o, out, CFG_TIMEOUT, v);
    snprintf(v, sizeof v, "%g", (double)o->direct_timeout_ms / 1000);
    cfg_row(o, out, CFG_DIRECT_TIMEOUT, v);
    cfg_row(o, out, CFG_RELAY, relay[o->path]);
    cfg_row(o, out, CFG_SECRET_FILE, o->secret_file ? o->secret_file : "");
    snprintf(v, sizeof v, "%d", o->verbose > 2 ? 2 : o->verbose);
    cfg_row(o, out, CFG_VERBOSE, v);
    cfg_row(o, out, CFG_QUIET, o->quiet ? "true" : "false");
    cfg_row(o, out, CFG_NO_RETRY, o->no_retry ? "true" : "false");
    cfg_row(o, out, CFG_DIR, o->dir ? o->dir : ".");
    snprintf(v, sizeof v, "%d", o->birthday_k);
    cfg_row(o, out, CFG_BIRTHDAY_K, v);
    snprintf(v, sizeof v, "%d", o->birthday_m);
    cfg_row(o, out, CFG_BIRTHDAY_M, v);
    snprintf(v, sizeof v, "%u", (unsigned)o->resume_timeout_s);
    cfg_row(o, out, CFG_RESUME_TIMEOUT, v);
    cfg_size(o->resume_buffer, v, sizeof v);
    cfg_row(o, out, CFG_RESUME_BUFFER, v);
    if (o->relay_grace_ms < 0)
        snprintf(v, sizeof v, "auto");
    else
        snprintf(v, sizeof v, "%lld", (long long)o->relay_grace_ms);
    cfg_row(o, out, CFG_RELAY_GRACE, v);
    cfg_row(o, out, CFG_DIRECT_FIRST, o->direct_first ? "true" : "false");
    cfg_row(o, out, CFG_NO_REPORT, o->no_report ? "true" : "false");
}
