/*
 * Configuration file. Unknown keys, duplicates and malformed lines are
 * errors naming the line, because a typo in a security setting must never
 * be silently ignored. The PIN is never a literal: only file: or env:.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "crypto/wipe.h"

#define MAX_LINE 4096
#define MAX_ENTRIES 64
#define PIN_MAX 256

/* Every key p11kms understands; `path` keys resolve relative to the file. */
static const struct {
    const char *name;
    bool path;
} known_keys[] = {
    {"module", false},      /* absolute path or p11-kit module name */
    {"token", false},       /* RFC 7512 URI */
    {"pin", false},         /* file:PATH or env:NAME */
    {"store", false},       /* sqlite:PATH */
    {"store_sync", false},  /* always | batch */
    {"audit", true},        /* audit log path */
    {"audit_sync", false},  /* always | batch */
    {"audit_max_bytes", false},
    {"sessions", false},    /* PKCS#11 session pool size */
    {"account", false},     /* account id used in key ARNs */
    {"region", false},      /* region used in key ARNs */
    {"sensitive_options", false}, /* extra connection option names kept secret */
    {"cache_ttl_s", false},
    {"cache_max_entries", false},
    {"cache_max_uses", false},
};

struct entry {
    char *key;
    char *value;
    char *resolved; /* absolute form for path keys */
    int line;
};

struct p11kms_config {
    char *path;
    char *dir;
    struct entry entries[MAX_ENTRIES];
    size_t n;
};

static int key_index(const char *k)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(known_keys); i++)
        if (strcmp(known_keys[i].name, k) == 0) return (int)i;
    return -1;
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s)) s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

static char *join_path(const char *dir, const char *p)
{
    char *out;
    if (p[0] == '/') return strdup(p);
    if (asprintf(&out, "%s/%s", dir, p) < 0) return NULL;
    return out;
}

static pk_result add_entry(p11kms_config *c, const char *k, const char *v, int line)
{
    int ki = key_index(k);
    struct entry *e;

    PK_ENSURE(ki >= 0, P11KMS_ERR_CONFIG, "%s:%d: unknown key '%s'", c->path, line, k);
    for (size_t i = 0; i < c->n; i++)
        PK_ENSURE(strcmp(c->entries[i].key, k) != 0, P11KMS_ERR_CONFIG,
                  "%s:%d: '%s' is already set on line %d", c->path, line, k, c->entries[i].line);
    PK_ENSURE(c->n < MAX_ENTRIES, P11KMS_ERR_CONFIG, "%s:%d: too many entries", c->path, line);
    PK_ENSURE(*v != '\0', P11KMS_ERR_CONFIG, "%s:%d: '%s' has an empty value", c->path, line, k);
    e = &c->entries[c->n];
    e->key = strdup(k);
    e->value = strdup(v);
    e->line = line;
    e->resolved = known_keys[ki].path ? join_path(c->dir, v) : NULL;
    PK_ENSURE(e->key && e->value && (!known_keys[ki].path || e->resolved), P11KMS_ERR_NO_MEMORY, "out of memory");
    c->n++;
    return PK_OK;
}

static pk_result parse_file(p11kms_config *c, FILE *f)
{
    char line[MAX_LINE + 2];
    int lineno = 0;

    while (fgets(line, sizeof(line), f) != NULL) {
        char *s, *eq;
        lineno++;
        PK_ENSURE(strchr(line, '\n') != NULL || feof(f), P11KMS_ERR_CONFIG, "%s:%d: line too long", c->path,
                  lineno);
        s = trim(line);
        if (*s == '\0' || *s == '#') continue;
        eq = strchr(s, '=');
        PK_ENSURE(eq != NULL, P11KMS_ERR_CONFIG, "%s:%d: expected 'key = value'", c->path, lineno);
        *eq = '\0';
        PK_GUARD(add_entry(c, trim(s), trim(eq + 1), lineno));
    }
    PK_ENSURE(!ferror(f), P11KMS_ERR_CONFIG, "%s: read error", c->path);
    return PK_OK;
}

static const char *lookup_path(const char *explicit_path)
{
    const char *env;
    if (explicit_path != NULL) return explicit_path;
    env = getenv("P11KMS_CONFIG");
    if (env != NULL && *env != '\0') return env;
    if (access("p11kms.conf", F_OK) == 0) return "p11kms.conf";
    if (access("/etc/p11kms/p11kms.conf", F_OK) == 0) return "/etc/p11kms/p11kms.conf";
    return NULL;
}

P11KMS_API p11kms_rc p11kms_config_load(const char *path, p11kms_config **out)
{
    pk_result r = PK_OK;
    p11kms_config *c = NULL;
    FILE *f = NULL;
    char *slash;
    const char *p;

    pk_error_clear();
    *out = NULL;
    p = lookup_path(path);
    PK_CHECK(p != NULL, P11KMS_ERR_CONFIG,
             "no configuration file: pass --config FILE or set P11KMS_CONFIG "
             "(also looked for ./p11kms.conf and /etc/p11kms/p11kms.conf)");
    c = calloc(1, sizeof(*c));
    PK_CHECK_ALLOC(c);
    c->path = realpath(p, NULL);
    PK_CHECK(c->path != NULL, P11KMS_ERR_CONFIG, "cannot open configuration %s: %s", p, strerror(errno));
    c->dir = strdup(c->path);
    PK_CHECK_ALLOC(c->dir);
    slash = strrchr(c->dir, '/');
    if (slash != NULL) *(slash == c->dir ? slash + 1 : slash) = '\0';
    f = fopen(c->path, "r");
    PK_CHECK(f != NULL, P11KMS_ERR_CONFIG, "cannot open configuration %s: %s", c->path, strerror(errno));
    PK_TRY(parse_file(c, f));
    PK_CHECK(p11kms_config_get(c, "module") != NULL, P11KMS_ERR_CONFIG, "%s: 'module' is not set", c->path);
    PK_CHECK(p11kms_config_get(c, "token") != NULL, P11KMS_ERR_CONFIG, "%s: 'token' is not set", c->path);
    PK_CHECK(p11kms_config_get(c, "pin") != NULL, P11KMS_ERR_CONFIG, "%s: 'pin' is not set", c->path);
    *out = c;
    c = NULL;
out:
    if (f != NULL) fclose(f);
    p11kms_config_free(c);
    return r.code;
}

P11KMS_API const char *p11kms_config_path(const p11kms_config *cfg)
{
    return cfg->path;
}

P11KMS_API const char *p11kms_config_get(const p11kms_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->entries[i].key, key) == 0) return cfg->entries[i].value;
    return NULL;
}

char *pk_conf_resolve(const p11kms_config *cfg, const char *path)
{
    return join_path(cfg->dir, path);
}

const char *pk_conf_path_value(const p11kms_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->entries[i].key, key) == 0)
            return cfg->entries[i].resolved ? cfg->entries[i].resolved : cfg->entries[i].value;
    return NULL;
}

pk_result pk_conf_uint(const p11kms_config *cfg, const char *key, unsigned long dflt, unsigned long min,
                       unsigned long max, unsigned long *out)
{
    const char *v = p11kms_config_get(cfg, key);
    char *end = NULL;
    unsigned long n;

    if (v == NULL) {
        *out = dflt;
        return PK_OK;
    }
    errno = 0;
    n = strtoul(v, &end, 10);
    PK_ENSURE(errno == 0 && end != v && *end == '\0' && v[0] != '-' && n >= min && n <= max, P11KMS_ERR_CONFIG,
              "%s: '%s' must be a number from %lu to %lu", cfg->path, key, min, max);
    *out = n;
    return PK_OK;
}

P11KMS_API void p11kms_config_free(p11kms_config *cfg)
{
    if (cfg == NULL) return;
    for (size_t i = 0; i < cfg->n; i++) {
        free(cfg->entries[i].key);
        free(cfg->entries[i].value);
        free(cfg->entries[i].resolved);
    }
    free(cfg->path);
    free(cfg->dir);
    free(cfg);
}

/* Strip one trailing newline (files written by echo) without touching other bytes. */
static void strip_newline(pk_secbuf *pin)
{
    while (pin->len > 0 && (pin->data[pin->len - 1] == '\n' || pin->data[pin->len - 1] == '\r'))
        pin->data[--pin->len] = '\0';
}

pk_result pk_conf_read_pin_file(const char *path, pk_secbuf *pin)
{
    pk_result r = PK_OK;
    struct stat st;
    int fd = -1;
    ssize_t n;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    PK_CHECK(fd >= 0, P11KMS_ERR_CONFIG, "cannot read PIN file %s: %s", path, strerror(errno));
    PK_CHECK(fstat(fd, &st) == 0 && S_ISREG(st.st_mode), P11KMS_ERR_CONFIG, "PIN file %s is not a regular file",
             path);
    PK_CHECK((st.st_mode & 077) == 0, P11KMS_ERR_CONFIG,
             "PIN file %s is accessible by group or others (mode %04o); run: chmod 600 %s", path,
             (unsigned)(st.st_mode & 07777), path);
    PK_TRY(pk_secbuf_alloc(pin, PIN_MAX + 1));
    n = read(fd, pin->data, PIN_MAX + 1);
    PK_CHECK(n >= 0, P11KMS_ERR_CONFIG, "cannot read PIN file %s: %s", path, strerror(errno));
    PK_CHECK(n <= PIN_MAX, P11KMS_ERR_CONFIG, "PIN file %s is larger than %d bytes", path, PIN_MAX);
    pin->len = (size_t)n;
    strip_newline(pin);
    PK_CHECK(pin->len > 0, P11KMS_ERR_CONFIG, "PIN file %s is empty", path);
out:
    if (fd >= 0) close(fd);
    if (pk_failed(r)) pk_secbuf_free(pin);
    return r;
}

static pk_result read_pin_file(const p11kms_config *cfg, const char *spec, pk_secbuf *pin)
{
    pk_result r;
    char *path = join_path(cfg->dir, spec);
    PK_ENSURE_ALLOC(path);
    r = pk_conf_read_pin_file(path, pin);
    free(path);
    return r;
}

static pk_result read_pin_env(const char *name, pk_secbuf *pin)
{
    const char *v = getenv(name);
    PK_ENSURE(v != NULL && *v != '\0', P11KMS_ERR_CONFIG, "PIN environment variable %s is not set", name);
    PK_ENSURE(strlen(v) <= PIN_MAX, P11KMS_ERR_CONFIG, "PIN in %s is longer than %d bytes", name, PIN_MAX);
    PK_GUARD(pk_secbuf_set(pin, v, strlen(v)));
    return PK_OK;
}

pk_result pk_conf_read_pin(const p11kms_config *cfg, pk_secbuf *pin)
{
    const char *spec = p11kms_config_get(cfg, "pin");
    PK_ENSURE(spec != NULL, P11KMS_ERR_CONFIG, "%s: 'pin' is not set", cfg->path);
    if (strncmp(spec, "file:", 5) == 0) return read_pin_file(cfg, spec + 5, pin);
    if (strncmp(spec, "env:", 4) == 0) return read_pin_env(spec + 4, pin);
    return pk_fail(P11KMS_ERR_CONFIG, "%s: 'pin' must be file:PATH or env:NAME (a literal PIN is not accepted)",
                   cfg->path);
}
