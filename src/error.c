/* Thread-local error messages behind attn_last_error(). */
#include <stdarg.h>
#include <stdio.h>
#include "error.h"

#define ATTN_ERROR_LEN 512

static _Thread_local char last_error[ATTN_ERROR_LEN];

attn_status attn_fail(attn_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

void attn_clear_error(void)
{
    last_error[0] = '\0';
}

ATTN_API const char *attn_last_error(void)
{
    return last_error;
}
