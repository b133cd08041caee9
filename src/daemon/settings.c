/* The daemon's keys of p11kms.conf (validated at load by src/conf), read into settings. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"

static int get_uint(const p11kms_config *cfg, const char *key, unsigned long dflt, unsigned long *out)
{
    const char *v = p11kms_config_get(cfg, key);
    char *end = NULL;
    *out = dflt;
    if (v == NULL) return 0;
    *out = strtoul(v, &end, 10);
    if (*end != '\0') {
        d_log("%s: '%s' is not a number", key, v);
        return -1;
    }
    return 0;
}

int d_settings_load(const p11kms_config *cfg, d_settings *s)
{
    unsigned long sessions;
    int r = 0;
    /* Each worker holds at most one PKCS#11 session: more workers than sessions only queue. */
    r |= get_uint(cfg, "sessions", 4, &sessions);
    r |= get_uint(cfg, "workers", sessions, &s->workers);
    r |= get_uint(cfg, "max_connections", 1024, &s->max_connections);
    r |= get_uint(cfg, "max_header_bytes", 16384, &s->max_header_bytes);
    r |= get_uint(cfg, "idle_timeout_s", 60, &s->idle_timeout_s);
    r |= get_uint(cfg, "read_timeout_s", 10, &s->read_timeout_s);
    r |= get_uint(cfg, "rate_limit", 0, &s->rate_limit);
    r |= get_uint(cfg, "rate_burst", s->rate_limit > 0 ? s->rate_limit : 1, &s->rate_burst);
    return r;
}

int d_principals_load(const p11kms_config *cfg, d_principals *p)
{
    const char *k, *v;
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; p11kms_config_entry(cfg, i, &k, &v); i++) {
        d_principal *grown, *e;
        char kind;
        if (strncmp(k, "principal.uid.", 14) == 0) kind = 'u';
        else if (strncmp(k, "principal.gid.", 14) == 0) kind = 'g';
        else if (strncmp(k, "principal.cert.", 15) == 0) kind = 'c';
        else continue;
        grown = realloc(p->v, (p->n + 1) * sizeof(*p->v));
        if (grown == NULL) return -1;
        p->v = grown;
        e = &p->v[p->n];
        e->kind = kind;
        e->subject = strdup(k + (kind == 'c' ? 15 : 14));
        e->arn = strdup(v);
        p->n++;
        if (e->subject == NULL || e->arn == NULL) return -1;
    }
    return 0;
}

void d_principals_free(d_principals *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].subject);
        free(p->v[i].arn);
    }
    free(p->v);
    memset(p, 0, sizeof(*p));
}

const char *d_principal_lookup(const d_principals *p, char kind, const char *subject)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].kind == kind && strcasecmp(p->v[i].subject, subject) == 0) return p->v[i].arn;
    return NULL;
}
