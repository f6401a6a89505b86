/* Thread-local error reporting: every failing path sets a message here. */
#ifndef ATTN_ERROR_H
#define ATTN_ERROR_H

#include "attn.h"

#if defined(__GNUC__)
#  define ATTN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define ATTN_PRINTF(a, b)
#endif

/* Records a formatted message for attn_last_error() and returns s. */
attn_status attn_fail(attn_status s, const char *fmt, ...) ATTN_PRINTF(2, 3);

/* Clears the message; every public entry point calls this first. */
void attn_clear_error(void);

#endif
