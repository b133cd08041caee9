/*
 * The transport: one libcurl easy handle per p11kms handle (keep-alive),
 * under a mutex since a handle may be shared by threads. unix:PATH uses
 * CURLOPT_UNIX_SOCKET_PATH and no signature (p11kmsd takes the caller from
 * SO_PEERCRED); https: verifies the daemon against ca_file and signs each
 * request with curl's AWS SigV4 ("aws:amz:REGION:SERVICE").
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "remote/remote_impl.h"
#include "util/codec.h"
#include "util/wipe.h"

#define SECRET_MAX 128
#define DEFAULT_REGION "local"

struct pk_remote {
    CURL *curl;
    pthread_mutex_t mu;
    char *endpoint; /* as configured, for messages */
    char *url;
    char region[32];
    bool signed_requests;
    char arn_prefix[96]; /* "arn:aws:kms:REGION:ACCOUNT:key/" as the daemon names keys (under mu) */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void global_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* Like a PIN file: regular, ours or root's, no access for group or others, one line. */
static pk_result read_secret_file(const char *path, pk_secbuf *out)
{
    pk_result r = PK_OK;
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    PK_CHECK(fd >= 0, P11KMS_ERR_CONFIG, "cannot read secret_access_key_file %s: %s", path, strerror(errno));
    PK_CHECK(fstat(fd, &st) == 0 && S_ISREG(st.st_mode), P11KMS_ERR_CONFIG,
             "secret_access_key_file %s is not a regular file", path);
    PK_CHECK((st.st_mode & 077) == 0, P11KMS_ERR_CONFIG,
             "secret_access_key_file %s is accessible by group or others (mode %04o); run: chmod 600 %s", path,
             (unsigned)(st.st_mode & 07777), path);
    PK_CHECK(st.st_uid == geteuid() || st.st_uid == 0, P11KMS_ERR_CONFIG,
             "secret_access_key_file %s is owned by uid %u, not by the running user (uid %u) or root", path,
             (unsigned)st.st_uid, (unsigned)geteuid());
    PK_TRY(pk_secbuf_alloc(out, SECRET_MAX + 2));
    n = read(fd, out->data, SECRET_MAX + 1);
    PK_CHECK(n >= 0, P11KMS_ERR_CONFIG, "cannot read secret_access_key_file %s: %s", path, strerror(errno));
    PK_CHECK(n <= SECRET_MAX, P11KMS_ERR_CONFIG, "secret_access_key_file %s is larger than %d bytes", path,
             SECRET_MAX);
    out->len = (size_t)n;
    while (out->len > 0 && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r'))
        out->data[--out->len] = '\0';
    PK_CHECK(out->len > 0, P11KMS_ERR_CONFIG, "secret_access_key_file %s is empty", path);
    out->data[out->len] = '\0';
out:
    if (fd >= 0) close(fd);
    if (pk_failed(r)) pk_secbuf_free(out);
    return r;
}

static pk_result set_https(pk_remote *r, const pk_remote_conf *c)
{
    pk_secbuf secret = PK_SECBUF_INIT;
    CURLcode rc = CURLE_OK;
    PK_ENSURE(c->access_key_id != NULL && c->secret_file != NULL, P11KMS_ERR_CONFIG,
              "%s: connect = %s needs access_key_id and secret_access_key_file (SigV4)", c->config_path,
              c->endpoint);
    PK_GUARD(read_secret_file(c->secret_file, &secret));
    r->url = strdup(c->endpoint);
    r->signed_requests = true;
    if (c->ca_file != NULL) rc = curl_easy_setopt(r->curl, CURLOPT_CAINFO, c->ca_file);
    if (rc == CURLE_OK) rc = curl_easy_setopt(r->curl, CURLOPT_USERNAME, c->access_key_id);
    /* curl keeps its own copy for the handle's life; ours is wiped now. */
    if (rc == CURLE_OK) rc = curl_easy_setopt(r->curl, CURLOPT_PASSWORD, (const char *)secret.data);
    pk_secbuf_free(&secret);
    PK_ENSURE_ALLOC(r->url);
    PK_ENSURE(rc == CURLE_OK, P11KMS_ERR_CONFIG, "connect = %s: %s", c->endpoint, curl_easy_strerror(rc));
    return PK_OK;
}

pk_result pk_remote_open(const pk_remote_conf *c, pk_remote **out)
{
    pk_result r = PK_OK;
    pk_remote *rm = calloc(1, sizeof(*rm));

    *out = NULL;
    PK_ENSURE_ALLOC(rm);
    pthread_mutex_init(&rm->mu, NULL);
    pthread_once(&curl_once, global_init);
    PK_CHECK(curl_init_rc == CURLE_OK, P11KMS_ERR_INTERNAL, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    rm->curl = curl_easy_init();
    rm->endpoint = strdup(c->endpoint);
    PK_CHECK(rm->curl != NULL && rm->endpoint != NULL, P11KMS_ERR_NO_MEMORY, "out of memory");
    snprintf(rm->region, sizeof(rm->region), "%s", c->region ? c->region : DEFAULT_REGION);
    if (strncmp(c->endpoint, "unix:", 5) == 0) {
        rm->url = strdup("http://localhost/");
        PK_CHECK_ALLOC(rm->url);
        PK_CHECK(curl_easy_setopt(rm->curl, CURLOPT_UNIX_SOCKET_PATH, c->endpoint + 5) == CURLE_OK,
                 P11KMS_ERR_CONFIG, "connect = %s: this libcurl cannot use Unix sockets", c->endpoint);
    } else {
        PK_TRY(set_https(rm, c));
    }
    curl_easy_setopt(rm->curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(rm->curl, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(rm->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(rm->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(rm->curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    *out = rm;
    rm = NULL;
out:
    pk_remote_close(rm);
    return r;
}

void pk_remote_close(pk_remote *r)
{
    if (r == NULL) return;
    if (r->curl != NULL) curl_easy_cleanup(r->curl);
    pthread_mutex_destroy(&r->mu);
    free(r->endpoint);
    free(r->url);
    free(r);
}

/* The answer may carry plaintext (base64): it grows in locked memory. */
static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    pk_secbuf *b = arg;
    if (n != 0 && size > SIZE_MAX / n) return 0;
    if (b->len + size * n > 8u * 1024 * 1024) return 0; /* far beyond any answer the daemon gives */
    if (pk_failed(pk_secbuf_append(b, p, size * n))) return 0;
    return size * n;
}

static const struct {
    const char *type;
    p11kms_rc rc;
} aws_errors[] = {
    {"NotFoundException", P11KMS_ERR_NOT_FOUND},
    {"ResourceNotFoundException", P11KMS_ERR_NOT_FOUND},
    {"DisabledException", P11KMS_ERR_DISABLED},
    {"KMSInvalidStateException", P11KMS_ERR_INVALID_STATE},
    {"InvalidCiphertextException", P11KMS_ERR_CIPHERTEXT_INVALID},
    {"IncorrectKeyException", P11KMS_ERR_CIPHERTEXT_INVALID},
    {"DecryptionFailure", P11KMS_ERR_CIPHERTEXT_INVALID},
    {"AccessDeniedException", P11KMS_ERR_ACCESS_DENIED},
    {"MalformedPolicyDocumentException", P11KMS_ERR_POLICY_INVALID},
    {"AlreadyExistsException", P11KMS_ERR_ALREADY_EXISTS},
    {"ResourceExistsException", P11KMS_ERR_ALREADY_EXISTS},
    {"LimitExceededException", P11KMS_ERR_LIMIT},
    {"ValidationException", P11KMS_ERR_INVALID_ARGUMENT},
    {"InvalidParameterException", P11KMS_ERR_INVALID_ARGUMENT},
    {"InvalidRequestException", P11KMS_ERR_INVALID_ARGUMENT},
    {"SerializationException", P11KMS_ERR_INVALID_ARGUMENT},
    {"InvalidSignatureException", P11KMS_ERR_SIGNATURE_INVALID},
    {"UnrecognizedClientException", P11KMS_ERR_UNRECOGNIZED_CLIENT},
    {"IncompleteSignature", P11KMS_ERR_INCOMPLETE_SIGNATURE},
    {"MissingAuthenticationTokenException", P11KMS_ERR_INCOMPLETE_SIGNATURE},
    {"RequestExpired", P11KMS_ERR_REQUEST_EXPIRED},
};

/* {"__type":"[ns#]Name[:...]","message"|"Message":..} -> the library's code and detail. */
static pk_result aws_error(const pk_remote *r, long status, const pk_secbuf *body, const char *op)
{
    pk_jv *doc = NULL;
    const char *type = NULL, *msg = NULL;
    char name[128] = "";
    p11kms_rc rc = P11KMS_ERR_INTERNAL;
    pk_result res;

    if (pk_ok(pk_json_parse((const char *)body->data, body->len, P11KMS_ERR_INTERNAL, &doc))) {
        type = pk_jv_str(pk_jv_get(doc, "__type"));
        msg = pk_jv_str(pk_jv_get(doc, "message"));
        if (msg == NULL) msg = pk_jv_str(pk_jv_get(doc, "Message"));
    }
    if (type != NULL) {
        const char *hash = strchr(type, '#');
        snprintf(name, sizeof(name), "%s", hash ? hash + 1 : type);
        name[strcspn(name, ":")] = '\0';
        for (size_t i = 0; i < PK_ARRAY_LEN(aws_errors); i++)
            if (strcmp(aws_errors[i].type, name) == 0) rc = aws_errors[i].rc;
    }
    if (msg != NULL && *msg != '\0')
        res = pk_fail(rc, "%s", msg);
    else
        res = pk_fail(rc, "p11kmsd at %s answered %s with HTTP %ld%s%s", r->endpoint, op, status,
                      *name ? " " : "", name);
    pk_json_free(doc);
    return res;
}

static pk_result perform(pk_remote *r, const char *service, const char *target, const pk_buf *body, long *status,
                         pk_secbuf *answer)
{
    struct curl_slist *hdrs = NULL, *h2 = NULL;
    char target_hdr[160], sigv4[96], errbuf[CURL_ERROR_SIZE] = "";
    CURLcode rc;

    snprintf(target_hdr, sizeof(target_hdr), "X-Amz-Target: %s", target);
    hdrs = curl_slist_append(NULL, "Content-Type: application/x-amz-json-1.1");
    if (hdrs != NULL) h2 = curl_slist_append(hdrs, target_hdr);
    if (h2 == NULL) {
        curl_slist_free_all(hdrs);
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory");
    }
    curl_easy_setopt(r->curl, CURLOPT_URL, r->url);
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, (const char *)body->data);
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE, (long)body->len);
    curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, answer);
    curl_easy_setopt(r->curl, CURLOPT_ERRORBUFFER, errbuf);
    if (r->signed_requests) {
        snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:%s", r->region, service);
        curl_easy_setopt(r->curl, CURLOPT_AWS_SIGV4, sigv4);
    }
    rc = curl_easy_perform(r->curl);
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(r->curl, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    /* curl's own text names "localhost port 80" for a Unix socket: its short message is clearer there. */
    if (rc != CURLE_OK)
        return pk_fail(P11KMS_ERR_TOKEN, "cannot reach p11kmsd at %s: %s", r->endpoint,
                       *errbuf && r->signed_requests ? errbuf : curl_easy_strerror(rc));
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, status);
    return PK_OK;
}

pk_result pk_remote_call(pk_remote *r, const char *service, const char *prefix, const char *op, pk_buf *body,
                         pk_jv **resp)
{
    pk_secbuf answer = PK_SECBUF_INIT;
    pk_result res;
    char target[128];
    long status = 0;

    *resp = NULL;
    snprintf(target, sizeof(target), "%s%s", prefix, op);
    pthread_mutex_lock(&r->mu);
    res = perform(r, service, target, body, &status, &answer);
    pthread_mutex_unlock(&r->mu);
    pk_buf_free(body); /* wipes: body->wipe */
    if (pk_ok(res) && status != 200) res = aws_error(r, status, &answer, op);
    if (pk_ok(res) && answer.len == 0) res = pk_json_parse("{}", 2, P11KMS_ERR_INTERNAL, resp);
    else if (pk_ok(res)) {
        res = pk_json_parse((const char *)answer.data, answer.len, P11KMS_ERR_INTERNAL, resp);
        if (pk_failed(res)) res = pk_fail(P11KMS_ERR_INTERNAL, "p11kmsd at %s sent %s an answer that is not JSON",
                                          r->endpoint, op);
    }
    pk_secbuf_free(&answer);
    return res;
}

void pk_remote_begin(pk_remote_req *q)
{
    memset(q, 0, sizeof(*q));
    q->body.wipe = true; /* it may carry plaintext, a secret map or a template */
    pk_jo_init(&q->j, &q->body);
    pk_jo_obj_begin(&q->j);
}

pk_result pk_remote_send(pk_remote *r, const char *service, const char *prefix, const char *op, pk_remote_req *q,
                         pk_jv **resp)
{
    pk_jo_obj_end(&q->j);
    *resp = NULL;
    if (pk_failed(pk_jo_result(&q->j))) {
        pk_buf_free(&q->body);
        return pk_jo_result(&q->j);
    }
    return pk_remote_call(r, service, prefix, op, &q->body, resp);
}

pk_result pk_remote_send_only(pk_remote *r, const char *service, const char *prefix, const char *op,
                              pk_remote_req *q)
{
    pk_jv *resp = NULL;
    PK_GUARD(pk_remote_send(r, service, prefix, op, q, &resp));
    pk_json_free(resp);
    return PK_OK;
}

pk_result pk_remote_call1(pk_remote *r, const char *service, const char *prefix, const char *op, const char *key,
                          const char *value, pk_jv **resp)
{
    pk_remote_req q;
    pk_remote_begin(&q);
    pk_jo_kstr(&q.j, key, value);
    if (resp == NULL) return pk_remote_send_only(r, service, prefix, op, &q);
    return pk_remote_send(r, service, prefix, op, &q, resp);
}

void pk_remote_note_arn(pk_remote *r, const char *arn)
{
    const char *k = arn ? strstr(arn, ":key/") : NULL;
    if (k == NULL || strncmp(arn, "arn:", 4) != 0 || (size_t)(k + 5 - arn) >= sizeof(r->arn_prefix)) return;
    pthread_mutex_lock(&r->mu);
    snprintf(r->arn_prefix, sizeof(r->arn_prefix), "%.*s", (int)(k + 5 - arn), arn);
    pthread_mutex_unlock(&r->mu);
}

pk_result pk_remote_key_arn(pk_remote *r, const char *key_id, char *out, size_t size)
{
    pk_result res = PK_OK;
    pthread_mutex_lock(&r->mu);
    if (r->arn_prefix[0] == '\0')
        res = pk_fail(P11KMS_ERR_INTERNAL, "p11kmsd at %s has named no key by its ARN yet", r->endpoint);
    else
        snprintf(out, size, "%s%s", r->arn_prefix, key_id);
    pthread_mutex_unlock(&r->mu);
    return res;
}

int64_t pk_remote_epoch_ms(const pk_jv *v)
{
    if (pk_jv_typeof(v) == PK_JV_INTEGER) return pk_jv_int(v) * 1000;
    if (pk_jv_typeof(v) == PK_JV_REAL) return (int64_t)(pk_jv_number(v) * 1000.0 + 0.5);
    return 0;
}

const char *pk_remote_key_of_arn(const char *arn)
{
    const char *k = arn ? strstr(arn, ":key/") : NULL;
    return k ? k + 5 : arn;
}

void pk_remote_ctx(pk_json_out *j, const char *name, const p11kms_kv *ctx, size_t n)
{
    if (n == 0) return;
    pk_jo_key(j, name);
    pk_jo_obj_begin(j);
    for (size_t i = 0; i < n; i++) pk_jo_kstr(j, ctx[i].key, ctx[i].value);
    pk_jo_obj_end(j);
}

pk_result pk_remote_blob(const pk_jv *resp, const char *name, pk_buf *out, pk_secbuf *sec)
{
    const pk_jv *v = pk_jv_get(resp, name);
    const char *s = pk_jv_str(v);
    size_t len = pk_jv_strlen(v), n = 0;
    PK_ENSURE(s != NULL, P11KMS_ERR_INTERNAL, "p11kmsd's answer has no %s", name);
    if (sec != NULL) {
        PK_GUARD(pk_secbuf_alloc(sec, len / 4 * 3 + 3));
        PK_GUARD(pk_base64_decode(s, len, sec->data, &n));
        sec->len = n;
        return PK_OK;
    }
    PK_GUARD(pk_buf_reserve(out, len / 4 * 3 + 3));
    PK_GUARD(pk_base64_decode(s, len, out->data, &n));
    out->len = n;
    return PK_OK;
}
