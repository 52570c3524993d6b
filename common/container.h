#ifndef TP_CONTAINER_H
#define TP_CONTAINER_H
#include <stddef.h>
/* Recovers the struct that embeds a libuv handle, as libuv itself does internally. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif
