/*
 * A fault-injecting PKCS#11 module (issue 17). It loads the real module
 * named by P11KMS_FAULTY_MODULE (SoftHSM in the tests) and forwards its
 * C_GetFunctionList table entry by entry; the functions p11kms calls go
 * through a wrapper that can fail or delay them, driven by P11KMS_FAULTS:
 *
 *   P11KMS_FAULTS="C_Encrypt:CKR_DEVICE_ERROR@3,C_Sign:CKR_SESSION_HANDLE_INVALID%0.1,C_Decrypt:sleep=200ms"
 *
 * Each rule is FUNCTION:WHAT[WHEN][~after]:
 *   WHAT   a CKR name (or 0x hex), or sleep=Nms
 *   WHEN   @N: the Nth call only; @N+: the Nth call and every later one;
 *          @N-M: calls N to M (an outage that ends);
 *          %P: each call with probability P (0..1); none: every call
 *   ~after the real function runs first and its answer is replaced, as when
 *          a device fails after acting (an unknown outcome)
 * Counts are per process. P11KMS_FAULTS_SEED seeds %P (default 1);
 * P11KMS_FAULTS_LOG names a file that gets one line per injected fault;
 * P11KMS_FAULTS_TRACE one that gets the name of every call (to count them).
 * A malformed spec makes C_Initialize fail with CKR_ARGUMENTS_BAD and a
 * line on stderr, so a typo cannot silently test nothing.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

/* The functions p11kms calls (and a few p11-kit may), with their parameters and arguments. */
#define FAULTY_FUNCS(X) \
    X(C_Initialize, (CK_VOID_PTR a), (a)) \
    X(C_Finalize, (CK_VOID_PTR a), (a)) \
    X(C_GetInfo, (CK_INFO_PTR a), (a)) \
    X(C_GetSlotList, (CK_BBOOL a, CK_SLOT_ID_PTR b, CK_ULONG_PTR c), (a, b, c)) \
    X(C_GetSlotInfo, (CK_SLOT_ID a, CK_SLOT_INFO_PTR b), (a, b)) \
    X(C_GetTokenInfo, (CK_SLOT_ID a, CK_TOKEN_INFO_PTR b), (a, b)) \
    X(C_GetMechanismList, (CK_SLOT_ID a, CK_MECHANISM_TYPE_PTR b, CK_ULONG_PTR c), (a, b, c)) \
    X(C_GetMechanismInfo, (CK_SLOT_ID a, CK_MECHANISM_TYPE b, CK_MECHANISM_INFO_PTR c), (a, b, c)) \
    X(C_InitToken, (CK_SLOT_ID a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d), (a, b, c, d)) \
    X(C_InitPIN, (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c), (a, b, c)) \
    X(C_OpenSession, (CK_SLOT_ID a, CK_FLAGS b, CK_VOID_PTR c, CK_NOTIFY d, CK_SESSION_HANDLE_PTR e), \
      (a, b, c, d, e)) \
    X(C_CloseSession, (CK_SESSION_HANDLE a), (a)) \
    X(C_CloseAllSessions, (CK_SLOT_ID a), (a)) \
    X(C_Login, (CK_SESSION_HANDLE a, CK_USER_TYPE b, CK_UTF8CHAR_PTR c, CK_ULONG d), (a, b, c, d)) \
    X(C_Logout, (CK_SESSION_HANDLE a), (a)) \
    X(C_CreateObject, (CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b, CK_ULONG c, CK_OBJECT_HANDLE_PTR d), \
      (a, b, c, d)) \
    X(C_CopyObject, \
      (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c, CK_ULONG d, CK_OBJECT_HANDLE_PTR e), \
      (a, b, c, d, e)) \
    X(C_DestroyObject, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b), (a, b)) \
    X(C_GetAttributeValue, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c, CK_ULONG d), \
      (a, b, c, d)) \
    X(C_SetAttributeValue, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c, CK_ULONG d), \
      (a, b, c, d)) \
    X(C_FindObjectsInit, (CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b, CK_ULONG c), (a, b, c)) \
    X(C_FindObjects, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE_PTR b, CK_ULONG c, CK_ULONG_PTR d), (a, b, c, d)) \
    X(C_FindObjectsFinal, (CK_SESSION_HANDLE a), (a)) \
    X(C_EncryptInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c), (a, b, c)) \
    X(C_Encrypt, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e), \
      (a, b, c, d, e)) \
    X(C_DecryptInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c), (a, b, c)) \
    X(C_Decrypt, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e), \
      (a, b, c, d, e)) \
    X(C_SignInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c), (a, b, c)) \
    X(C_Sign, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e), \
      (a, b, c, d, e)) \
    X(C_GenerateKey, \
      (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_ATTRIBUTE_PTR c, CK_ULONG d, CK_OBJECT_HANDLE_PTR e), \
      (a, b, c, d, e)) \
    X(C_WrapKey, \
      (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c, CK_OBJECT_HANDLE d, CK_BYTE_PTR e, \
       CK_ULONG_PTR f), \
      (a, b, c, d, e, f)) \
    X(C_UnwrapKey, \
      (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c, CK_BYTE_PTR d, CK_ULONG e, \
       CK_ATTRIBUTE_PTR f, CK_ULONG g, CK_OBJECT_HANDLE_PTR h), \
      (a, b, c, d, e, f, g, h)) \
    X(C_GenerateRandom, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c), (a, b, c))

enum {
#define X(name, params, args) F_##name,
    FAULTY_FUNCS(X)
#undef X
    F_COUNT
};

static const char *const func_names[F_COUNT] = {
#define X(name, params, args) #name,
    FAULTY_FUNCS(X)
#undef X
};

typedef struct rule {
    int func;
    CK_RV rv;          /* fault to return; CKR_OK with sleep_ms for latency */
    unsigned sleep_ms;
    unsigned long nth; /* 0: not by count */
    int from_nth;      /* @N+ */
    unsigned long to_nth; /* @N-M: M; 0 if not a range */
    double prob;       /* < 0: not by chance */
    int after;         /* run the real function first */
} rule;

#define MAX_RULES 64
static rule rules[MAX_RULES];
static size_t nrules;
static int spec_bad;
static unsigned long calls[F_COUNT];
static unsigned long long rng_state = 1;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST list;

static const struct {
    const char *name;
    CK_RV rv;
} faults[] = {
    {"CKR_DEVICE_ERROR", CKR_DEVICE_ERROR},
    {"CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED},
    {"CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT},
    {"CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID},
    {"CKR_SESSION_CLOSED", CKR_SESSION_CLOSED},
    {"CKR_DEVICE_MEMORY", CKR_DEVICE_MEMORY},
    {"CKR_GENERAL_ERROR", CKR_GENERAL_ERROR},
    {"CKR_CRYPTOKI_NOT_INITIALIZED", CKR_CRYPTOKI_NOT_INITIALIZED},
    {"CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED},
    {"CKR_HOST_MEMORY", CKR_HOST_MEMORY},
    {"CKR_PIN_INCORRECT", CKR_PIN_INCORRECT},
    {"CKR_PIN_LOCKED", CKR_PIN_LOCKED},
    {"CKR_USER_NOT_LOGGED_IN", CKR_USER_NOT_LOGGED_IN},
    {"CKR_OPERATION_ACTIVE", CKR_OPERATION_ACTIVE},
};

static int func_index(const char *name, size_t len)
{
    for (int i = 0; i < F_COUNT; i++)
        if (strlen(func_names[i]) == len && strncmp(func_names[i], name, len) == 0) return i;
    return -1;
}

static int parse_what(rule *r, const char *what, size_t len)
{
    char buf[64];
    char *end;
    if (len >= sizeof(buf)) return -1;
    memcpy(buf, what, len);
    buf[len] = '\0';
    if (strncmp(buf, "sleep=", 6) == 0) {
        unsigned long ms = strtoul(buf + 6, &end, 10);
        if (end == buf + 6 || strcmp(end, "ms") != 0 || ms > 600000) return -1;
        r->rv = CKR_OK;
        r->sleep_ms = (unsigned)ms;
        return 0;
    }
    if (strncmp(buf, "0x", 2) == 0) {
        r->rv = strtoul(buf, &end, 16);
        return *end == '\0' && r->rv != CKR_OK ? 0 : -1;
    }
    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
        if (strcmp(faults[i].name, buf) == 0) {
            r->rv = faults[i].rv;
            return 0;
        }
    return -1;
}

/* WHEN and ~after, after WHAT. */
static int parse_when(rule *r, const char *s)
{
    char *end = (char *)s;
    r->prob = -1;
    if (*s == '@') {
        r->nth = strtoul(s + 1, &end, 10);
        if (end == s + 1 || r->nth == 0) return -1;
        if (*end == '+') {
            r->from_nth = 1;
            end++;
        } else if (*end == '-') {
            const char *m = end + 1;
            r->to_nth = strtoul(m, &end, 10);
            if (end == m || r->to_nth < r->nth) return -1;
        }
    } else if (*s == '%') {
        errno = 0;
        r->prob = strtod(s + 1, &end);
        if (end == s + 1 || errno != 0 || r->prob < 0 || r->prob > 1) return -1;
    }
    if (strcmp(end, "~after") == 0) {
        r->after = 1;
        return 0;
    }
    return *end == '\0' ? 0 : -1;
}

static int parse_rule(const char *item)
{
    rule r;
    char text[160];
    const char *colon = strchr(item, ':');
    size_t wlen;
    if (nrules >= MAX_RULES || colon == NULL || strlen(item) >= sizeof(text)) return -1;
    memset(&r, 0, sizeof(r));
    r.func = func_index(item, (size_t)(colon - item));
    if (r.func < 0) return -1;
    snprintf(text, sizeof(text), "%s", colon + 1);
    wlen = strcspn(text, "@%~");
    if (parse_what(&r, text, wlen) != 0 || parse_when(&r, text + wlen) != 0) return -1;
    rules[nrules++] = r;
    return 0;
}

static void parse_spec(void)
{
    const char *spec = getenv("P11KMS_FAULTS");
    const char *seed = getenv("P11KMS_FAULTS_SEED");
    char *copy, *save = NULL;
    if (seed != NULL) rng_state = strtoull(seed, NULL, 10) | 1;
    if (spec == NULL || *spec == '\0') return;
    copy = strdup(spec);
    if (copy == NULL) {
        spec_bad = 1;
        return;
    }
    for (char *item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save))
        if (parse_rule(item) != 0) {
            fprintf(stderr, "faulty-p11: bad rule in P11KMS_FAULTS: %s\n", item);
            spec_bad = 1;
            break;
        }
    free(copy);
}

/* xorshift64*: reproducible from the seed, good enough to pick calls. */
static double next_uniform_inlock(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static int rule_fires_inlock(const rule *r, unsigned long n)
{
    if (r->nth != 0) return r->from_nth ? n >= r->nth : r->to_nth ? n >= r->nth && n <= r->to_nth : n == r->nth;
    if (r->prob >= 0) return next_uniform_inlock() < r->prob;
    return 1;
}

static void note(int func, const rule *r, unsigned long n)
{
    const char *path = getenv("P11KMS_FAULTS_LOG");
    FILE *f;
    if (path == NULL || (f = fopen(path, "a")) == NULL) return;
    if (r->sleep_ms)
        fprintf(f, "%s call %lu: sleep %ums\n", func_names[func], n, r->sleep_ms);
    else
        fprintf(f, "%s call %lu: 0x%lx%s\n", func_names[func], n, (unsigned long)r->rv, r->after ? " after" : "");
    fclose(f);
}

static void trace(int func)
{
    const char *path = getenv("P11KMS_FAULTS_TRACE");
    FILE *f;
    if (path == NULL || (f = fopen(path, "a")) == NULL) return;
    fprintf(f, "%s\n", func_names[func]);
    fclose(f);
}

/* Counts the call; returns the rule that fires on it, if any (sleeps are served here). */
static const rule *decide(int func)
{
    const rule *hit = NULL;
    unsigned long n;
    pthread_mutex_lock(&lock);
    n = ++calls[func];
    trace(func);
    for (size_t i = 0; i < nrules; i++) {
        if (rules[i].func != func || !rule_fires_inlock(&rules[i], n)) continue;
        note(func, &rules[i], n);
        if (rules[i].sleep_ms) {
            unsigned ms = rules[i].sleep_ms;
            struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
            pthread_mutex_unlock(&lock);
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&lock);
            continue;
        }
        if (hit == NULL) hit = &rules[i];
    }
    pthread_mutex_unlock(&lock);
    return hit;
}

#define X(name, params, args) \
    static CK_RV w_##name params \
    { \
        const rule *r = decide(F_##name); \
        CK_RV rv; \
        if (r != NULL && !r->after) return r->rv; \
        rv = real->name args; \
        return r != NULL ? r->rv : rv; \
    }
FAULTY_FUNCS(X)
#undef X

static CK_RV load_real(void)
{
    const char *path = getenv("P11KMS_FAULTY_MODULE");
    CK_C_GetFunctionList get;
    void *dl;
    if (path == NULL) {
        fprintf(stderr, "faulty-p11: set P11KMS_FAULTY_MODULE to the real module's path\n");
        return CKR_GENERAL_ERROR;
    }
    /* Never unloaded: the real module's threads and atexit handlers may outlive us. */
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        fprintf(stderr, "faulty-p11: %s\n", dlerror());
        return CKR_GENERAL_ERROR;
    }
    get = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
    if (get == NULL) return CKR_GENERAL_ERROR;
    return get(&real);
}

static CK_RV refuse_initialize(CK_VOID_PTR a)
{
    (void)a;
    return CKR_ARGUMENTS_BAD;
}

static void setup(void)
{
    parse_spec();
    if (load_real() != CKR_OK || real == NULL) return;
    list = *real; /* entry by entry; the wrapped ones are replaced below */
#define X(name, params, args) list.name = w_##name;
    FAULTY_FUNCS(X)
#undef X
    if (spec_bad) list.C_Initialize = refuse_initialize;
}

__attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
    pthread_once(&once, setup);
    if (out == NULL) return CKR_ARGUMENTS_BAD;
    if (real == NULL) return CKR_GENERAL_ERROR;
    *out = &list;
    return CKR_OK;
}
