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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/wipe.h"

#define MAX_LINE 4096
#define MAX_ENTRIES 1024 /* principal.* mappings are one line each */
#define PIN_MAX 256

/*
 * A key's value is checked when the file is loaded, naming the line, so a
 * bad value fails every command alike instead of the first one that reads
 * it. Consumers may parse again; these rules must stay at least as strict.
 */
typedef pk_result (*value_rule)(const char *where, const char *key, const char *v);

static pk_result rule_any(const char *where, const char *key, const char *v);
static pk_result rule_module(const char *where, const char *key, const char *v);
static pk_result rule_token(const char *where, const char *key, const char *v);
static pk_result rule_pin(const char *where, const char *key, const char *v);
static pk_result rule_store(const char *where, const char *key, const char *v);
static pk_result rule_sync(const char *where, const char *key, const char *v);
static pk_result rule_account(const char *where, const char *key, const char *v);
static pk_result rule_region(const char *where, const char *key, const char *v);
static pk_result rule_names(const char *where, const char *key, const char *v);
static pk_result rule_uint(const char *where, const char *key, const char *v);
static pk_result rule_listen(const char *where, const char *key, const char *v);
static pk_result rule_mode(const char *where, const char *key, const char *v);
static pk_result rule_user(const char *where, const char *key, const char *v);
static pk_result rule_principal(const char *where, const char *key, const char *v);
static pk_result rule_connect(const char *where, const char *key, const char *v);
static pk_result rule_akid(const char *where, const char *key, const char *v);

/* Every key p11kms understands; `path` keys resolve relative to the file. */
static const struct {
    const char *name;
    bool path;
    value_rule rule;
    unsigned long min, max; /* for rule_uint; must match the consumer's range */
    const char *unit;       /* for rule_uint messages */
} known_keys[] = {
    {"module", false, rule_module, 0, 0, NULL},   /* absolute path or p11-kit module name */
    {"module_args", false, rule_any, 0, 0, NULL}, /* C_Initialize pReserved string (tokens/README.md) */
    {"token", false, rule_token, 0, 0, NULL},     /* RFC 7512 URI */
    {"pin", false, rule_pin, 0, 0, NULL},         /* file:PATH or env:NAME */
    {"store", false, rule_store, 0, 0, NULL},     /* sqlite:PATH */
    {"store_sync", false, rule_sync, 0, 0, NULL}, /* always | batch */
    {"audit", true, rule_any, 0, 0, NULL},        /* audit log path */
    {"audit_sync", false, rule_sync, 0, 0, NULL}, /* always | batch */
    {"audit_max_bytes", false, rule_uint, 0, (unsigned long)INT64_MAX, "bytes"},
    {"sessions", false, rule_uint, 1, 256, "sessions"},  /* PKCS#11 session pool size */
    {"account", false, rule_account, 0, 0, NULL},        /* account id used in key ARNs */
    {"region", false, rule_region, 0, 0, NULL},          /* region used in key ARNs */
    {"sensitive_options", false, rule_names, 0, 0, NULL}, /* extra connection option names kept secret */
    {"cache_ttl_s", false, rule_uint, 0, 7 * 86400UL, "seconds"},
    {"cache_max_entries", false, rule_uint, 1, 1000000, "entries"},
    {"cache_max_uses", false, rule_uint, 0, UINT32_MAX, "uses"},
    /* p11kmsd (docs/DAEMON.md) */
    {"listen", false, rule_listen, 0, 0, NULL},          /* unix:PATH or https://ADDR:PORT; repeatable */
    {"socket_mode", false, rule_mode, 0, 0, NULL},       /* octal mode of unix: sockets */
    {"socket_owner", false, rule_user, 0, 0, NULL},      /* user name or uid */
    {"socket_group", false, rule_user, 0, 0, NULL},      /* group name or gid */
    {"tls_cert", true, rule_any, 0, 0, NULL},            /* PEM certificate chain */
    {"tls_key", true, rule_any, 0, 0, NULL},             /* PEM private key */
    {"tls_client_ca", true, rule_any, 0, 0, NULL},       /* PEM CAs: turns on client certificates */
    {"workers", false, rule_uint, 1, 256, "threads"},
    {"max_connections", false, rule_uint, 1, 65536, "connections"},
    {"max_header_bytes", false, rule_uint, 1024, 1048576, "bytes"},
    {"idle_timeout_s", false, rule_uint, 1, 86400, "seconds"},
    {"read_timeout_s", false, rule_uint, 1, 3600, "seconds"},
    {"rate_limit", false, rule_uint, 0, 1000000, "requests per second"},
    {"rate_burst", false, rule_uint, 1, 1000000, "requests"},
    /* the command as a client of p11kmsd (docs/DAEMON.md, "The command as a client") */
    {"connect", false, rule_connect, 0, 0, NULL},          /* unix:PATH or https://HOST:PORT */
    {"ca_file", true, rule_any, 0, 0, NULL},               /* PEM CAs that sign p11kmsd's certificate */
    {"access_key_id", false, rule_akid, 0, 0, NULL},       /* SigV4 over https: */
    {"secret_access_key_file", true, rule_any, 0, 0, NULL}, /* its secret, mode 0600 like a PIN file */
};

/* Keys that may be given more than once; every line counts. */
static const char *const repeatable_keys[] = {"listen"};

/*
 * Key families: PREFIX + a suffix the rule checks (principal.uid.1001 = ARN).
 * Each full key may appear once; the family may have any number of members.
 */
static const struct {
    const char *prefix;
    value_rule rule;
} key_families[] = {
    {"principal.uid.", rule_principal},
    {"principal.gid.", rule_principal},
    {"principal.cert.", rule_principal},
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

static pk_result rule_any(const char *where, const char *key, const char *v)
{
    (void)where, (void)key, (void)v;
    return PK_OK;
}

static pk_result rule_module(const char *where, const char *key, const char *v)
{
    PK_ENSURE(v[0] == '/' || strchr(v, '/') == NULL, P11KMS_ERR_CONFIG,
              "%s: %s: '%s' must be an absolute path or a p11-kit module name", where, key, v);
    return PK_OK;
}

static bool is_hex(char c)
{
    return isxdigit((unsigned char)c) != 0;
}

/* RFC 7512: pkcs11: then NAME=VALUE attributes split by ';', a query after '?'. */
static pk_result rule_token(const char *where, const char *key, const char *v)
{
    const char *p = v + 7;
    PK_ENSURE(strncmp(v, "pkcs11:", 7) == 0, P11KMS_ERR_CONFIG,
              "%s: %s: '%s' is not a PKCS#11 URI (expected pkcs11:token=LABEL, RFC 7512)", where, key, v);
    for (; *p != '\0'; p++) {
        if (*p == '%') {
            PK_ENSURE(is_hex(p[1]) && is_hex(p[2]), P11KMS_ERR_CONFIG,
                      "%s: %s: malformed token URI '%s': '%%' must be followed by two hex digits", where, key, v);
            p += 2;
            continue;
        }
        PK_ENSURE(isgraph((unsigned char)*p), P11KMS_ERR_CONFIG,
                  "%s: %s: malformed token URI '%s': spaces and control characters must be %%-encoded", where, key,
                  v);
    }
    for (p = v + 7; *p != '\0' && *p != '?';) {
        size_t n = strcspn(p, ";?");
        const char *eq = memchr(p, '=', n);
        PK_ENSURE(n == 0 || (eq != NULL && eq > p), P11KMS_ERR_CONFIG,
                  "%s: %s: malformed token URI '%s': '%.*s' is not NAME=VALUE", where, key, v, (int)n, p);
        p += n;
        if (*p == ';') p++;
    }
    return PK_OK;
}

/* The PIN's value is never echoed: a literal PIN here is exactly what we refuse. */
static pk_result rule_pin(const char *where, const char *key, const char *v)
{
    if (strncmp(v, "file:", 5) == 0) {
        PK_ENSURE(v[5] != '\0', P11KMS_ERR_CONFIG, "%s: %s: file: needs a path (file:PATH)", where, key);
        return PK_OK;
    }
    if (strncmp(v, "env:", 4) == 0) {
        const char *n = v + 4;
        PK_ENSURE((isalpha((unsigned char)n[0]) || n[0] == '_') &&
                      strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == strlen(n),
                  P11KMS_ERR_CONFIG, "%s: %s: env: needs an environment variable name (env:NAME)", where, key);
        return PK_OK;
    }
    return pk_fail(P11KMS_ERR_CONFIG, "%s: %s: must be file:PATH or env:NAME (a literal PIN is not accepted)", where,
                   key);
}

/* Only the scheme of another URI is echoed: a database URI may carry a password. */
static pk_result rule_store(const char *where, const char *key, const char *v)
{
    const char *colon = strchr(v, ':');
    if (strncmp(v, "sqlite:", 7) == 0) {
        PK_ENSURE(v[7] != '\0', P11KMS_ERR_CONFIG, "%s: %s: sqlite: needs a path (sqlite:PATH)", where, key);
        return PK_OK;
    }
    if (colon != NULL)
        return pk_fail(P11KMS_ERR_CONFIG, "%s: %s: unsupported store '%.*s:...': use sqlite:PATH", where, key,
                       (int)(colon - v), v);
    return pk_fail(P11KMS_ERR_CONFIG, "%s: %s: '%s' is not a store URI: use sqlite:PATH", where, key, v);
}

static pk_result rule_sync(const char *where, const char *key, const char *v)
{
    PK_ENSURE(strcmp(v, "always") == 0 || strcmp(v, "batch") == 0, P11KMS_ERR_CONFIG,
              "%s: %s: must be always or batch, not '%s'", where, key, v);
    return PK_OK;
}

static pk_result rule_account(const char *where, const char *key, const char *v)
{
    PK_ENSURE(strlen(v) == 12 && strspn(v, "0123456789") == 12, P11KMS_ERR_CONFIG,
              "%s: %s: '%s' is not a 12-digit account id", where, key, v);
    return PK_OK;
}

/* Same alphabet and length as the handle's region buffer (src/core/core.h). */
static pk_result rule_region(const char *where, const char *key, const char *v)
{
    PK_ENSURE(strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(v), P11KMS_ERR_CONFIG,
              "%s: %s: '%s' must be lower-case letters, digits and '-'", where, key, v);
    PK_ENSURE(strlen(v) < 32, P11KMS_ERR_CONFIG, "%s: %s: '%s' is longer than 31 characters", where, key, v);
    return PK_OK;
}

/* a, b, c: option names, each non-empty. */
static pk_result rule_names(const char *where, const char *key, const char *v)
{
    const char *p = v;
    for (int item = 1;; item++) {
        size_t n = strcspn(p, ",");
        size_t lead = strspn(p, " \t");
        size_t len = n > lead ? n - lead : 0;
        while (len > 0 && isspace((unsigned char)p[lead + len - 1])) len--;
        PK_ENSURE(len > 0, P11KMS_ERR_CONFIG, "%s: %s: item %d of the list is empty", where, key, item);
        PK_ENSURE(strspn(p + lead, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") >= len,
                  P11KMS_ERR_CONFIG, "%s: %s: '%.*s' is not an option name (letters, digits, '.', '_', '-')", where,
                  key, (int)len, p + lead);
        if (p[n] == '\0') return PK_OK;
        p += n + 1;
    }
}

/* unix:PATH or https://HOST:PORT (what p11kmsd's `listen` accepts, seen from the client). */
static pk_result rule_connect(const char *where, const char *key, const char *v)
{
    const char *host = v + 8, *colon;
    if (strncmp(v, "unix:", 5) == 0) {
        PK_ENSURE(v[5] != '\0', P11KMS_ERR_CONFIG, "%s: %s: unix: needs a socket path (unix:PATH)", where, key);
        return PK_OK;
    }
    PK_ENSURE(strncmp(v, "https://", 8) == 0, P11KMS_ERR_CONFIG,
              "%s: %s: '%s' must be unix:PATH or https://HOST:PORT", where, key, v);
    colon = strrchr(host, ':');
    PK_ENSURE(colon != NULL && colon > host && colon[1] != '\0' && strspn(colon + 1, "0123456789") == strlen(colon + 1) &&
                  strlen(colon + 1) <= 5 && atol(colon + 1) >= 1 && atol(colon + 1) <= 65535 &&
                  strcspn(host, "/?#@ ") >= (size_t)(colon - host),
              P11KMS_ERR_CONFIG, "%s: %s: '%s' must be https://HOST:PORT (port 1 to 65535, no path)", where, key, v);
    return PK_OK;
}

/* AWS access key ids: 16 to 128 upper-case letters and digits. */
static pk_result rule_akid(const char *where, const char *key, const char *v)
{
    PK_ENSURE(strlen(v) >= 16 && strlen(v) <= 128 && strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == strlen(v),
              P11KMS_ERR_CONFIG, "%s: %s: '%s' is not an access key id (16 to 128 upper-case letters and digits)",
              where, key, v);
    return PK_OK;
}

static int key_index(const char *k);

static pk_result rule_uint(const char *where, const char *key, const char *v)
{
    int ki = key_index(key);
    char *end = NULL;
    unsigned long n;

    errno = 0;
    n = strtoul(v, &end, 10);
    PK_ENSURE(isdigit((unsigned char)v[0]) && errno != ERANGE && *end == '\0', P11KMS_ERR_CONFIG,
              "%s: %s: '%s' is not a whole number of %s", where, key, v, known_keys[ki].unit);
    PK_ENSURE(n >= known_keys[ki].min && n <= known_keys[ki].max, P11KMS_ERR_CONFIG,
              "%s: %s: %s is out of range (%lu to %lu %s)", where, key, v, known_keys[ki].min, known_keys[ki].max,
              known_keys[ki].unit);
    return PK_OK;
}

/* unix:/ABSOLUTE/PATH or https://IPV4:PORT or https://[IPV6]:PORT. */
static pk_result rule_listen(const char *where, const char *key, const char *v)
{
    const char *port;
    char *end = NULL;
    unsigned long n;

    if (strncmp(v, "unix:", 5) == 0) {
        PK_ENSURE(v[5] == '/', P11KMS_ERR_CONFIG, "%s: %s: '%s': unix: needs an absolute path", where, key, v);
        PK_ENSURE(strlen(v + 5) < 108, P11KMS_ERR_CONFIG, "%s: %s: socket path is longer than 107 bytes", where,
                  key);
        return PK_OK;
    }
    PK_ENSURE(strncmp(v, "https://", 8) == 0, P11KMS_ERR_CONFIG,
              "%s: %s: '%s' must be unix:PATH or https://ADDR:PORT", where, key, v);
    port = strrchr(v + 8, ':');
    PK_ENSURE(port != NULL && port > v + 8, P11KMS_ERR_CONFIG, "%s: %s: '%s' needs ADDR:PORT", where, key, v);
    errno = 0;
    n = strtoul(port + 1, &end, 10);
    PK_ENSURE(isdigit((unsigned char)port[1]) && *end == '\0' && errno == 0 && n >= 1 && n <= 65535,
              P11KMS_ERR_CONFIG, "%s: %s: '%s': the port must be 1 to 65535", where, key, v);
    return PK_OK;
}

static pk_result rule_mode(const char *where, const char *key, const char *v)
{
    PK_ENSURE(strlen(v) >= 3 && strlen(v) <= 4 && strspn(v, "01234567") == strlen(v) && strtoul(v, NULL, 8) <= 0777,
              P11KMS_ERR_CONFIG, "%s: %s: '%s' is not an octal mode such as 0660", where, key, v);
    return PK_OK;
}

/* A user or group name (POSIX portable characters) or a number. */
static pk_result rule_user(const char *where, const char *key, const char *v)
{
    PK_ENSURE(strlen(v) <= 32 && v[0] != '-' &&
                  strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == strlen(v),
              P11KMS_ERR_CONFIG, "%s: %s: '%s' is not a user or group name or number", where, key, v);
    return PK_OK;
}

static bool all_of(const char *s, const char *set)
{
    return *s != '\0' && strspn(s, set) == strlen(s);
}

/* principal.uid.N / principal.gid.N (numbers), principal.cert.X (SHA-256 hex or a CN) = an ARN. */
static pk_result rule_principal(const char *where, const char *key, const char *v)
{
    const char *suffix = strchr(key + strlen("principal."), '.') + 1;
    bool ok;

    if (strncmp(key, "principal.cert.", 15) == 0)
        ok = all_of(suffix, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-");
    else
        ok = all_of(suffix, "0123456789") && strlen(suffix) <= 10;
    PK_ENSURE(ok, P11KMS_ERR_CONFIG, "%s: %s: '%s' is not a %s", where, key, suffix,
              key[10] == 'c' ? "certificate SHA-256 fingerprint (hex) or common name" : "number");
    PK_ENSURE(strncmp(v, "arn:", 4) == 0 && strchr(v, ' ') == NULL, P11KMS_ERR_CONFIG,
              "%s: %s: '%s' is not a principal ARN (arn:aws:iam::ACCOUNT:role/NAME)", where, key, v);
    PK_ENSURE(strlen(v) <= 2048, P11KMS_ERR_CONFIG, "%s: %s: the ARN is longer than 2048 characters", where, key);
    return PK_OK;
}

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

static int family_index(const char *k)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(key_families); i++)
        if (strncmp(k, key_families[i].prefix, strlen(key_families[i].prefix)) == 0) return (int)i;
    return -1;
}

static bool repeatable(const char *k)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(repeatable_keys); i++)
        if (strcmp(repeatable_keys[i], k) == 0) return true;
    return false;
}

static pk_result check_value(const p11kms_config *c, int ki, int fi, const char *k, const char *v, int line)
{
    char where[PATH_MAX + 16];
    snprintf(where, sizeof(where), "%s:%d", c->path, line);
    if (ki < 0) return key_families[fi].rule(where, k, v);
    return known_keys[ki].rule(where, known_keys[ki].name, v);
}

/*
 * The `module` line loads code into every p11kms process, so the file must
 * be as trusted as the binary: owned by us or root, and written by no one else.
 */
static pk_result check_trusted(const p11kms_config *c, FILE *f)
{
    struct stat st;
    PK_ENSURE(fstat(fileno(f), &st) == 0, P11KMS_ERR_CONFIG, "cannot stat configuration %s: %s", c->path,
              strerror(errno));
    PK_ENSURE((st.st_mode & 022) == 0, P11KMS_ERR_CONFIG,
              "configuration %s is writable by group or others (mode %04o); its 'module' line loads code: "
              "run chmod go-w %s",
              c->path, (unsigned)(st.st_mode & 07777), c->path);
    PK_ENSURE(st.st_uid == geteuid() || st.st_uid == 0, P11KMS_ERR_CONFIG,
              "configuration %s is owned by uid %u, not by the running user (uid %u) or root; its 'module' line "
              "loads code",
              c->path, (unsigned)st.st_uid, (unsigned)geteuid());
    return PK_OK;
}

static pk_result add_entry(p11kms_config *c, const char *k, const char *v, int line)
{
    int ki = key_index(k);
    int fi = ki < 0 ? family_index(k) : -1;
    bool path = ki >= 0 && known_keys[ki].path;
    struct entry *e;

    PK_ENSURE(ki >= 0 || fi >= 0, P11KMS_ERR_CONFIG, "%s:%d: unknown key '%s'", c->path, line, k);
    for (size_t i = 0; i < c->n && !repeatable(k); i++)
        PK_ENSURE(strcmp(c->entries[i].key, k) != 0, P11KMS_ERR_CONFIG,
                  "%s:%d: '%s' is already set on line %d", c->path, line, k, c->entries[i].line);
    PK_ENSURE(c->n < MAX_ENTRIES, P11KMS_ERR_CONFIG, "%s:%d: too many entries", c->path, line);
    PK_ENSURE(*v != '\0', P11KMS_ERR_CONFIG, "%s:%d: '%s' has an empty value", c->path, line, k);
    PK_GUARD(check_value(c, ki, fi, k, v, line));
    e = &c->entries[c->n];
    e->key = strdup(k);
    e->value = strdup(v);
    e->line = line;
    e->resolved = path ? join_path(c->dir, v) : NULL;
    PK_ENSURE(e->key && e->value && (!path || e->resolved), P11KMS_ERR_NO_MEMORY, "out of memory");
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
    PK_TRY(check_trusted(c, f));
    PK_TRY(parse_file(c, f));
    /* A client of p11kmsd (connect =) has no token, PIN or store on this host. */
    if (p11kms_config_get(c, "connect") == NULL) {
        PK_CHECK(p11kms_config_get(c, "module") != NULL, P11KMS_ERR_CONFIG, "%s: 'module' is not set", c->path);
        PK_CHECK(p11kms_config_get(c, "token") != NULL, P11KMS_ERR_CONFIG, "%s: 'token' is not set", c->path);
        PK_CHECK(p11kms_config_get(c, "pin") != NULL, P11KMS_ERR_CONFIG, "%s: 'pin' is not set", c->path);
    }
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

P11KMS_API int p11kms_config_entry(const p11kms_config *cfg, size_t i, const char **key, const char **value)
{
    if (i >= cfg->n) return 0;
    *key = cfg->entries[i].key;
    *value = cfg->entries[i].resolved ? cfg->entries[i].resolved : cfg->entries[i].value;
    return 1;
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
    PK_CHECK(st.st_uid == geteuid() || st.st_uid == 0, P11KMS_ERR_CONFIG,
             "PIN file %s is owned by uid %u, not by the running user (uid %u) or root", path, (unsigned)st.st_uid,
             (unsigned)geteuid());
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
