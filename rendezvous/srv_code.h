/* The mailbox (wh.c) in cluster mode: its directory hooks wired to the cluster's code
 * operations (cl_code.c), and the sides of claimers on other instances (srv_code.c). */
#ifndef TP_SRV_CODE_H
#define TP_SRV_CODE_H

#include "rendezvous/cluster.h"
#include "rendezvous/wh.h"

struct srv;

/* claimers on other instances of this instance's channels held at once (one per channel
 * claimed; a claim of a number not here is answered and forgotten at once) */
#define SRV_CODE_MAX_REMOTE WH_MAX_MAX

/* The cl_user callbacks of the mailbox, before cl_new. */
void srv_code_user(struct cl_user *u);
/* After cl_new and wh_new: the mailbox's directory is the cluster's (with a cluster). -1: out
 * of memory. */
int srv_code_wire(struct srv *s);
/* At srv_free: the remote claimers' sides (the mailbox is freed already). */
void srv_code_free(struct srv *s);

#endif
