/* Opening a store by URI, and the record helpers every backend shares. */
#include "config.h"

#include <string.h>

#include "store/store.h"

#define SQLITE_SCHEME "sqlite:"

void pk_record_clear(pk_record *r)
{
    if (r == NULL) return;
    pk_buf_free(&r->body);
    memset(r, 0, sizeof(*r));
}

/*
 * Only the scheme of an unsupported URI is echoed: a PostgreSQL URI may carry
 * a password ("postgres://user:secret@host/db"), and details are printed.
 */
static pk_result unsupported(const char *uri)
{
    const char *sep = strstr(uri, "://");
    const char *colon = strchr(uri, ':');

    if (sep != NULL)
        return pk_fail(P11KMS_ERR_CONFIG, "unsupported store '%.*s://...': use sqlite:PATH", (int)(sep - uri), uri);
    if (colon != NULL)
        return pk_fail(P11KMS_ERR_CONFIG, "unsupported store '%.*s:...': use sqlite:PATH", (int)(colon - uri), uri);
    return pk_fail(P11KMS_ERR_CONFIG, "unsupported store '%s': use sqlite:PATH", uri);
}

pk_result pk_store_open(const char *uri, bool create, pk_store **out)
{
    const char *path;

    PK_ENSURE_REF(out);
    *out = NULL;
    PK_ENSURE(uri != NULL && *uri != '\0', P11KMS_ERR_CONFIG, "no store configured: use sqlite:PATH");
    if (strncmp(uri, SQLITE_SCHEME, strlen(SQLITE_SCHEME)) != 0) return unsupported(uri);
    path = uri + strlen(SQLITE_SCHEME);
    PK_ENSURE(*path != '\0', P11KMS_ERR_CONFIG, "store '%s' has an empty path: use sqlite:PATH", uri);
    return pk_store_sqlite_open(path, create, out);
}
