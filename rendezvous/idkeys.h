/* Tables of id -> Ed25519 public key, and the files they come from: the id database
 * (--id-db: which key owns which id, first key wins, kept across restarts) and the allowlist
 * (--authorized: the only id/key pairs that may register). Both files have one pair per line,
 * "ID BASE64-KEY"; blank lines and lines starting with '#' are ignored. Database lines end in
 * the id's last-seen time, "ID BASE64-KEY SECONDS" (unix time; a line without it, from an older
 * server, counts as seen when it is read), and a later line for an id with the same key is a
 * touch that moves that time (PROTOCOL.md, section 13). */
#ifndef TP_IDKEYS_H
#define TP_IDKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct ik;

enum ik_status { IK_OK = 0, IK_EXISTS, IK_FULL, IK_NOMEM };

/* At most max pairs (0: no limit). Returns NULL when out of memory. */
struct ik *ik_new(size_t max);
void ik_free(struct ik *t);

/* The key bound to id, or NULL. */
const unsigned char *ik_find(const struct ik *t, const char *id);
/* Binds id to key unless id is bound already (IK_EXISTS: the first key stays). */
enum ik_status ik_add(struct ik *t, const char *id, const unsigned char key[PROTO_KEY_BYTES]);
/* The same with its last-seen time (unix seconds; ik_add: now). */
enum ik_status ik_add_seen(struct ik *t, const char *id, const unsigned char key[PROTO_KEY_BYTES],
                           int64_t seen);
size_t ik_count(const struct ik *t);
/* How many ids key owns. */
size_t ik_key_ids(const struct ik *t, const unsigned char key[PROTO_KEY_BYTES]);
/* Forgets id. Returns 0, or -1 when it was not there. */
int ik_remove(struct ik *t, const char *id);
/* id's last-seen time (0: not there) and, in *on_disk, the one its file holds. */
int64_t ik_seen(const struct ik *t, const char *id, int64_t *on_disk);
/* Moves id's last-seen time forward to seen; on_disk: the file holds it now. */
void ik_set_seen(struct ik *t, const char *id, int64_t seen, bool on_disk);
/* Forgets the ids last seen before `before` unless keep(arg, id) says otherwise. Returns how
 * many went. */
size_t ik_expire(struct ik *t, int64_t before, bool (*keep)(void *arg, const char *id), void *arg);

/* How ik_load treats what the file holds besides well-formed, distinct pairs. */
enum ik_mode {
    IK_ALLOWLIST, /* an operator's file: a second line for an id is an error */
    IK_DATABASE,  /* the server's own file: a second line for an id is dropped (first key wins),
                   * and an unterminated last line that does not parse is the remains of a write
                   * cut short by a crash, dropped too */
};

struct ik_load_info {
    size_t lines;   /* pairs read */
    size_t dropped; /* IK_DATABASE: lines dropped */
    size_t touches; /* IK_DATABASE: later lines that only moved an id's last-seen time */
    bool rewrite;   /* IK_DATABASE: lines were dropped, lack a stamp, or the last one is
                     * unterminated */
};

/* Adds the pairs in path to t. A missing file is an empty one when missing_ok. Returns 0, or -1
 * with "PATH:LINE: reason" (or "PATH: reason") in err. */
int ik_load(struct ik *t, const char *path, enum ik_mode mode, bool missing_ok,
            struct ik_load_info *info, char *err, size_t errlen);

/* Rewrites path to hold exactly the pairs of t with their last-seen times (a temporary file,
 * fsync, rename). */
int ik_rewrite(struct ik *t, const char *path, char *err, size_t errlen);

/* Opens path for appending (created 0600 when missing). Returns the descriptor or -1 with err. */
int ik_open_append(const char *path, char *err, size_t errlen);
/* Appends one pair with its last-seen time; sync: and waits until it is on disk (a new owner
 * must survive a crash; a touch may be lost, costing a day of last-seen at most). Returns 0;
 * -1 with err when it failed and the file is as it was (a partial write is cut back); -2 with
 * err when part of the line may have stayed: nothing more may be appended to fd. */
int ik_append(int fd, const char *id, const unsigned char key[PROTO_KEY_BYTES], int64_t seen,
              bool sync, char *err, size_t errlen);

#endif
