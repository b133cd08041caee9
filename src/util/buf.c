/* Growable buffer for public data. Secret data goes in pk_secbuf instead. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/bytes.h"
#include "util/wipe.h"

pk_result pk_buf_reserve(pk_buf *b, size_t extra)
{
    size_t need, cap;
    uint8_t *p;

    PK_ENSURE(extra <= SIZE_MAX - b->len - 1, P11KMS_ERR_LIMIT, "buffer too large");
    need = b->len + extra + 1; /* room for a NUL from pk_buf_cstr */
    if (need <= b->cap) return PK_OK;
    cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->wipe) {
        p = malloc(cap);
        PK_ENSURE_ALLOC(p);
        if (b->len) memcpy(p, b->data, b->len);
        pk_wipe(b->data, b->cap);
        free(b->data);
    } else {
        p = realloc(b->data, cap);
        PK_ENSURE_ALLOC(p);
    }
    b->data = p;
    b->cap = cap;
    return PK_OK;
}

pk_result pk_buf_append(pk_buf *b, const void *p, size_t n)
{
    PK_GUARD(pk_buf_reserve(b, n));
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return PK_OK;
}

pk_result pk_buf_append_str(pk_buf *b, const char *s)
{
    return pk_buf_append(b, s, strlen(s));
}

pk_result pk_buf_printf(pk_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    PK_ENSURE(n >= 0, P11KMS_ERR_INTERNAL, "format error");
    PK_GUARD(pk_buf_reserve(b, (size_t)n));
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return PK_OK;
}

pk_result pk_buf_append_u8(pk_buf *b, uint8_t v)
{
    return pk_buf_append(b, &v, 1);
}

pk_result pk_buf_append_be32(pk_buf *b, uint32_t v)
{
    uint8_t t[4];
    pk_store_be32(t, v);
    return pk_buf_append(b, t, 4);
}

pk_result pk_buf_append_be64(pk_buf *b, uint64_t v)
{
    uint8_t t[8];
    pk_store_be64(t, v);
    return pk_buf_append(b, t, 8);
}

pk_result pk_buf_append_lp(pk_buf *b, const void *p, size_t n)
{
    PK_ENSURE(n <= UINT32_MAX, P11KMS_ERR_LIMIT, "field too large");
    PK_GUARD(pk_buf_append_be32(b, (uint32_t)n));
    return pk_buf_append(b, p, n);
}

pk_result pk_buf_append_lpstr(pk_buf *b, const char *s)
{
    return pk_buf_append_lp(b, s ? s : "", s ? strlen(s) : 0);
}

pk_result pk_buf_cstr(pk_buf *b)
{
    PK_GUARD(pk_buf_reserve(b, 0));
    b->data[b->len] = '\0';
    return PK_OK;
}

void pk_buf_reset(pk_buf *b)
{
    b->len = 0;
}

void pk_buf_free(pk_buf *b)
{
    if (b == NULL) return;
    if (b->wipe) pk_wipe(b->data, b->cap);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

bool pk_strlcpy(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size) {
        if (size > 0) dst[0] = '\0';
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}
