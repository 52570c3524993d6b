/* Text from the network made safe for a terminal: every string a stranger, a peer or the server
 * wrote (ids, reasons, error messages, file names, chat lines) passes through here before a
 * person sees it, so that none of it can move the cursor, retitle the window or hide text. */
#ifndef TP_VIS_H
#define TP_VIS_H

#include <stddef.h>

/* Room for the rendering of n bytes (each byte becomes at most 4 characters), and the NUL. */
#define VIS_SIZE(n) (4 * (n) + 1)

/* Renders the n bytes at s into out (len bytes, always NUL-terminated): printable ASCII and
 * valid UTF-8 pass, and the tab; other C0 controls, DEL and bytes that are not valid UTF-8 become "\xHH"; C1
 * controls (U+0080-U+009F) and the invisible direction, line and zero-width characters (U+061C,
 * U+200B-U+200F, U+2028-U+202E, U+2060, U+2066-U+2069, U+FEFF) become "\uHHHH"; a backslash
 * becomes "\\\\", so that text that spells an escape cannot pass for one. Text that does not fit is cut at a character
 * boundary. Returns the length written. */
size_t vis_mem(const char *s, size_t n, char *out, size_t len);

/* The same for a NUL-terminated string; returns out. */
const char *vis_str(const char *s, char *out, size_t len);

/* Whether the n bytes at s hold nothing vis_mem hides (a backslash is shown doubled, but is
 * not hidden: it counts as clean). */
int vis_clean(const char *s, size_t n);

#endif
