/*
 * Files in the AWS Encryption SDK message format under a CMK
 * (docs/FILES.md): the public streaming API around src/esdk.
 *
 * The data key is obtained exactly as the ESDK's KMS keyring does:
 * GenerateDataKey (32 bytes) under the CMK with the message's whole
 * encryption context, stored as an EDK with provider id "aws-kms",
 * provider info = the key ARN and the p11kms ciphertext blob. Decryption
 * finds that EDK and calls Decrypt with the message's context. The
 * plaintext data key is held in locked memory only while the keys are
 * derived, then wiped.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/op.h"
#include "crypto/crypto.h"
#include "crypto/crypto_esdk.h"
#include "esdk/esdk.h"
#include "remote/remote.h"
#include "util/codec.h"
#include "util/json_out.h"

#define PROVIDER_KMS "aws-kms"
#define ARN_MAX 160
#define BLOB_MIN 18 /* version, flags, key UUID (docs/FORMAT.md) */

/* ---- shared helpers ---- */

typedef struct sink_ctx {
    p11kms_write_fn out;
    void *arg;
} sink_ctx;

static pk_result sink(void *arg, const uint8_t *p, size_t n)
{
    sink_ctx *s = arg;
    int rc = s->out(s->arg, p, n);
    if (rc == 0) return PK_OK;
    return pk_fail(rc > 0 && rc < P11KMS_RC_COUNT_ ? (p11kms_rc)rc : P11KMS_ERR_INTERNAL,
                   "the output could not be written");
}

/* A key's ARN: the handle's, or with connect = the daemon's (it may serve another region and account). */
static pk_result key_arn(const p11kms *h, const char *id, char arn[ARN_MAX])
{
    if (h->remote != NULL) return pk_remote_key_arn(h->remote, id, arn, ARN_MAX);
    pk_key_arn(&h->env, id, arn, ARN_MAX);
    return PK_OK;
}

/* The ARN of the key a p11kms ciphertext blob names. */
static pk_result blob_arn(const p11kms *h, const uint8_t *blob, size_t len, char arn[ARN_MAX])
{
    char id[PK_UUID_STR_LEN + 1];
    PK_ENSURE(len >= BLOB_MIN, P11KMS_ERR_CIPHERTEXT_INVALID, "the encrypted data key is not a p11kms blob");
    pk_uuid_format(blob + 2, id);
    return key_arn(h, id, arn);
}

static pk_result summary(const char *arn, const pk_esdk_header *hd, uint64_t bytes, uint64_t frames, char **json)
{
    pk_buf b = {0};
    pk_json_out j;
    char suite[8];
    pk_result r;

    if (json == NULL) return PK_OK;
    snprintf(suite, sizeof(suite), "0x%04x", hd->suite);
    pk_jo_init(&j, &b);
    pk_jo_obj_begin(&j);
    pk_jo_kstr(&j, "KeyArn", arn);
    pk_jo_key(&j, "EncryptionContext");
    pk_jo_obj_begin(&j);
    for (size_t i = 0; i < hd->nctx; i++) pk_jo_kstr(&j, hd->ctx[i].key, hd->ctx[i].value);
    pk_jo_obj_end(&j);
    pk_jo_key(&j, "Bytes");
    pk_jo_uint(&j, bytes);
    pk_jo_key(&j, "Frames");
    pk_jo_uint(&j, frames);
    pk_jo_kstr(&j, "Suite", suite);
    pk_jo_key(&j, "FrameLength");
    pk_jo_uint(&j, hd->frame_len);
    pk_jo_obj_end(&j);
    r = pk_jo_result(&j);
    if (pk_ok(r)) r = pk_buf_cstr(&b);
    if (pk_failed(r)) {
        pk_buf_free(&b);
        return r;
    }
    *json = (char *)b.data;
    return PK_OK;
}

static pk_result copy_ctx(const p11kms_kv *ctx, size_t n, size_t extra, p11kms_kv **out, size_t *nout)
{
    p11kms_kv *c = calloc(n + extra + 1, sizeof(*c));
    PK_ENSURE_ALLOC(c);
    *out = c; /* freed by the owner with free_ctx, even on failure */
    *nout = 0;
    for (size_t i = 0; i < n; i++) {
        PK_ENSURE(ctx[i].key != NULL && ctx[i].value != NULL, P11KMS_ERR_INVALID_ARGUMENT,
                  "encryption context pair %zu is NULL", i);
        c[i].key = strdup(ctx[i].key);
        c[i].value = strdup(ctx[i].value);
        *nout = i + 1;
        PK_ENSURE(c[i].key != NULL && c[i].value != NULL, P11KMS_ERR_NO_MEMORY, "out of memory");
    }
    return PK_OK;
}

static void free_ctx(p11kms_kv *c, size_t n)
{
    for (size_t i = 0; c != NULL && i < n; i++) {
        free((char *)c[i].key);
        free((char *)c[i].value);
    }
    free(c);
}

/* ---- encryption ---- */

struct p11kms_file_encryptor {
    sink_ctx out;
    pk_esdk_enc *enc;
    char arn[ARN_MAX];
    pk_esdk_header hd; /* a public copy for the summary: context, suite, frame length */
    uint64_t bytes;
};

/* Signed suites carry the verification key in the context (aws-crypto-public-key). */
static pk_result add_public_key(pk_esdk_header *hd, pk_ec384 **key)
{
    uint8_t point[PK_EC384_POINT_LEN];
    char *b64 = malloc(pk_base64_len(sizeof(point)) + 1), *name = strdup(PK_ESDK_PUBKEY_CTX);
    pk_result r = PK_OK;

    PK_CHECK_ALLOC(b64);
    PK_CHECK_ALLOC(name);
    PK_TRY(pk_ec384_generate(key));
    PK_TRY(pk_ec384_point(*key, point));
    pk_base64_encode(point, sizeof(point), b64);
    hd->ctx[hd->nctx].key = name;
    hd->ctx[hd->nctx].value = b64;
    hd->nctx++;
    return PK_OK;
out:
    free(b64);
    free(name);
    return r;
}

static pk_result check_user_ctx(const p11kms_kv *ctx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        PK_ENSURE(ctx[i].key == NULL || strncmp(ctx[i].key, "aws-crypto-", 11) != 0, P11KMS_ERR_INVALID_ARGUMENT,
                  "encryption context key '%s' is reserved (aws-crypto- prefix)", ctx[i].key);
    return PK_OK;
}

static pk_result enc_open(p11kms *h, const p11kms_caller *c, const char *key, const p11kms_kv *ctx, size_t nctx,
                          const p11kms_file_opts *opts, p11kms_file_encryptor *f)
{
    pk_esdk_header hd = {0};
    pk_ec384 *sign_key = NULL;
    p11kms_buf *dk = NULL, *blob = NULL;
    pk_esdk_edk edk;
    bool signs = false;
    pk_result r = PK_OK;

    PK_CHECK(key != NULL && *key != '\0', P11KMS_ERR_INVALID_ARGUMENT, "no key given");
    PK_TRY(check_user_ctx(ctx, nctx));
    hd.suite = opts != NULL && opts->suite != 0 ? opts->suite : PK_ESDK_SUITE_COMMIT;
    hd.frame_len = opts != NULL && opts->frame_length != 0 ? opts->frame_length : PK_ESDK_FRAME_DEFAULT;
    PK_CHECK(pk_esdk_suite_known(hd.suite, &signs), P11KMS_ERR_INVALID_ARGUMENT,
             "algorithm suite 0x%04x is not supported (0x0478 or 0x0578)", hd.suite);
    PK_CHECK(hd.frame_len <= PK_ESDK_FRAME_MAX, P11KMS_ERR_INVALID_ARGUMENT, "frame length must be 1..%u",
             PK_ESDK_FRAME_MAX);
    PK_TRY(copy_ctx(ctx, nctx, 1, &hd.ctx, &hd.nctx));
    if (signs) PK_TRY(add_public_key(&hd, &sign_key));
    PK_TRY(pk_random(hd.msg_id, sizeof(hd.msg_id)));
    /* The whole context, the public key included, as the KMS keyring sends it. */
    r.code = p11kms_generate_data_key(h, c, key, hd.ctx, hd.nctx, PK_ESDK_KEY_LEN, &dk, &blob);
    if (pk_failed(r)) goto out;
    PK_TRY(blob_arn(h, p11kms_buf_data(blob), p11kms_buf_len(blob), f->arn));
    edk.provider_id = pk_bytes_of(PROVIDER_KMS, strlen(PROVIDER_KMS));
    edk.provider_info = pk_bytes_of(f->arn, strlen(f->arn));
    edk.ciphertext = pk_bytes_of(p11kms_buf_data(blob), p11kms_buf_len(blob));
    PK_TRY(copy_ctx(hd.ctx, hd.nctx, 0, &f->hd.ctx, &f->hd.nctx));
    f->hd.suite = hd.suite;
    f->hd.frame_len = hd.frame_len;
    r = pk_esdk_enc_new(&hd, &edk, 1, p11kms_buf_data(dk), sign_key, opts != NULL ? opts->threads : 1, sink, &f->out,
                        &f->enc);
    sign_key = NULL; /* owned by the stream now, even on failure */
out:
    pk_ec384_free(sign_key);
    p11kms_buf_free(dk); /* wipes the data key */
    p11kms_buf_free(blob);
    pk_esdk_header_clear(&hd);
    return r;
}

P11KMS_API p11kms_rc p11kms_file_encryptor_new(p11kms *h, const p11kms_caller *c, const char *key,
                                               const p11kms_kv *ctx, size_t nctx, const p11kms_file_opts *opts,
                                               p11kms_write_fn out, void *arg, p11kms_file_encryptor **enc)
{
    p11kms_file_encryptor *f;
    pk_result r;

    pk_error_clear();
    if (enc == NULL) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no output pointer given").code;
    *enc = NULL;
    if (h == NULL || out == NULL || (ctx == NULL && nctx > 0))
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no handle, output or context given").code;
    f = calloc(1, sizeof(*f));
    if (f == NULL) return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory").code;
    f->out = (sink_ctx){out, arg};
    r = enc_open(h, c, key, ctx, nctx, opts, f);
    if (pk_failed(r)) {
        p11kms_file_encryptor_free(f);
        return r.code;
    }
    *enc = f;
    return P11KMS_OK;
}

P11KMS_API p11kms_rc p11kms_file_encrypt_update(p11kms_file_encryptor *enc, const uint8_t *p, size_t n)
{
    pk_error_clear();
    if (enc == NULL || (p == NULL && n > 0)) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no stream or data").code;
    enc->bytes += n;
    return pk_esdk_enc_update(enc->enc, p, n).code;
}

P11KMS_API p11kms_rc p11kms_file_encrypt_final(p11kms_file_encryptor *enc, char **summary_json)
{
    pk_result r;
    pk_error_clear();
    if (summary_json) *summary_json = NULL;
    if (enc == NULL) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no stream given").code;
    r = pk_esdk_enc_final(enc->enc);
    if (pk_ok(r)) r = summary(enc->arn, &enc->hd, enc->bytes, pk_esdk_enc_frames(enc->enc), summary_json);
    return r.code;
}

P11KMS_API void p11kms_file_encryptor_free(p11kms_file_encryptor *enc)
{
    if (enc == NULL) return;
    pk_esdk_enc_free(enc->enc);
    free_ctx(enc->hd.ctx, enc->hd.nctx);
    free(enc);
}

/* ---- decryption and rewrapping ---- */

struct p11kms_file_decryptor {
    p11kms *h;
    const p11kms_caller *caller;
    sink_ctx out;
    pk_esdk_dec *dec;
    p11kms_kv *required;
    size_t nreq;
    char arn[ARN_MAX];
    size_t edk_index;
    bool rewrap;
    char *new_key;
};

static pk_result check_required(const p11kms_file_decryptor *f, const pk_esdk_header *hd)
{
    for (size_t i = 0; i < f->nreq; i++) {
        const char *have = NULL;
        for (size_t j = 0; j < hd->nctx; j++)
            if (strcmp(hd->ctx[j].key, f->required[i].key) == 0) have = hd->ctx[j].value;
        PK_ENSURE(have != NULL, P11KMS_ERR_CIPHERTEXT_INVALID,
                  "encryption context mismatch: the message has no '%s' pair", f->required[i].key);
        PK_ENSURE(strcmp(have, f->required[i].value) == 0, P11KMS_ERR_CIPHERTEXT_INVALID,
                  "encryption context mismatch: the message's '%s' has another value", f->required[i].key);
    }
    return PK_OK;
}

static bool is_kms_edk(const pk_esdk_edk *e)
{
    return e->provider_id.len == strlen(PROVIDER_KMS) && memcmp(e->provider_id.ptr, PROVIDER_KMS, e->provider_id.len) == 0;
}

/* Decrypt one aws-kms EDK in the HSM; the key that decrypted must be the one its provider info names. */
static pk_result kms_decrypt_edk(p11kms_file_decryptor *f, const pk_esdk_header *hd, const pk_esdk_edk *e,
                                 pk_secbuf *key)
{
    p11kms_buf *pt = NULL;
    char *key_id = NULL, arn[ARN_MAX];
    pk_result r = PK_OK;

    r.code = p11kms_decrypt(f->h, f->caller, hd->ctx, hd->nctx, e->ciphertext.ptr, e->ciphertext.len, &pt, &key_id);
    if (pk_failed(r)) {
        r = pk_annotate(r, "cannot decrypt the message's data key: ");
        goto out;
    }
    PK_TRY(key_arn(f->h, key_id, arn));
    PK_CHECK(e->provider_info.len == strlen(arn) && memcmp(e->provider_info.ptr, arn, strlen(arn)) == 0,
             P11KMS_ERR_CIPHERTEXT_INVALID, "the data key was decrypted by %s, not by the key the message names", arn);
    memcpy(f->arn, arn, sizeof(arn));
    PK_TRY(pk_secbuf_set(key, p11kms_buf_data(pt), p11kms_buf_len(pt)));
out:
    p11kms_buf_free(pt);
    free(key_id);
    return r;
}

static pk_result dec_key(void *arg, const pk_esdk_header *hd, pk_secbuf *key)
{
    p11kms_file_decryptor *f = arg;
    pk_result r = pk_fail(P11KMS_ERR_CIPHERTEXT_INVALID, "the message has no aws-kms encrypted data key");
    bool signs = false;

    pk_esdk_suite_known(hd->suite, &signs);
    PK_ENSURE(!(f->rewrap && signs), P11KMS_ERR_INVALID_ARGUMENT,
              "suite 0x0578 messages are signed over the header: rewrapping would break the signature");
    PK_GUARD(check_required(f, hd));
    for (size_t i = 0; i < hd->nedk; i++) {
        if (!is_kms_edk(&hd->edk[i])) continue;
        r = kms_decrypt_edk(f, hd, &hd->edk[i], key);
        if (pk_ok(r)) {
            f->edk_index = i;
            break;
        }
    }
    return r;
}

/* Rewrap: the EDK re-encrypted in the HSM, a new header tag, the same body. */
static pk_result rewrap_header(void *arg, const pk_esdk_header *hd, const pk_secbuf *data_key)
{
    p11kms_file_decryptor *f = arg;
    const pk_esdk_edk *old = &hd->edk[f->edk_index];
    pk_esdk_header nh = *hd;
    pk_esdk_edk *edk = NULL;
    pk_secbuf derived = PK_SECBUF_INIT;
    p11kms_buf *blob = NULL;
    uint8_t commit[32], tag[16];
    char arn[ARN_MAX];
    pk_result r = PK_OK;

    memset(&nh.body, 0, sizeof(nh.body)); /* nh borrows hd's context; only its body is its own */
    r.code = p11kms_reencrypt(f->h, f->caller, old->ciphertext.ptr, old->ciphertext.len, hd->ctx, hd->nctx,
                              f->new_key != NULL ? f->new_key : f->arn, hd->ctx, hd->nctx, &blob);
    if (pk_failed(r)) {
        r = pk_annotate(r, "cannot re-encrypt the message's data key: ");
        goto out;
    }
    PK_TRY(blob_arn(f->h, p11kms_buf_data(blob), p11kms_buf_len(blob), arn));
    edk = malloc(hd->nedk * sizeof(*edk));
    PK_CHECK_ALLOC(edk);
    memcpy(edk, hd->edk, hd->nedk * sizeof(*edk));
    edk[f->edk_index].provider_info = pk_bytes_of(arn, strlen(arn));
    edk[f->edk_index].ciphertext = pk_bytes_of(p11kms_buf_data(blob), p11kms_buf_len(blob));
    PK_TRY(pk_esdk_derive(hd->suite, data_key->data, hd->msg_id, &derived, commit));
    PK_TRY(pk_esdk_header_build(&nh, edk, hd->nedk));
    PK_TRY(pk_esdk_header_tag(&derived, &nh.body, tag));
    PK_TRY(sink(&f->out, nh.body.data, nh.body.len));
    PK_TRY(sink(&f->out, tag, sizeof(tag)));
    memcpy(f->arn, arn, sizeof(arn));
out:
    pk_secbuf_free(&derived);
    pk_buf_free(&nh.body);
    p11kms_buf_free(blob);
    free(edk);
    return r;
}

static p11kms_rc dec_create(p11kms *h, const p11kms_caller *c, const p11kms_kv *required, size_t nreq,
                            unsigned threads, p11kms_write_fn out, void *arg, p11kms_file_decryptor **dec)
{
    p11kms_file_decryptor *f;
    pk_result r;

    if (dec == NULL) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no output pointer given").code;
    *dec = NULL;
    if (h == NULL || out == NULL || (required == NULL && nreq > 0))
        return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no handle, output or context given").code;
    f = calloc(1, sizeof(*f));
    if (f == NULL) return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory").code;
    f->h = h;
    f->caller = c;
    f->out = (sink_ctx){out, arg};
    r = copy_ctx(required, nreq, 0, &f->required, &f->nreq);
    if (pk_ok(r)) r = pk_esdk_dec_new(threads, dec_key, f, sink, &f->out, &f->dec);
    if (pk_failed(r)) {
        p11kms_file_decryptor_free(f);
        return r.code;
    }
    *dec = f;
    return P11KMS_OK;
}

P11KMS_API p11kms_rc p11kms_file_decryptor_new(p11kms *h, const p11kms_caller *c, const p11kms_kv *required,
                                               size_t nreq, unsigned threads, p11kms_write_fn out, void *arg,
                                               p11kms_file_decryptor **dec)
{
    pk_error_clear();
    return dec_create(h, c, required, nreq, threads, out, arg, dec);
}

P11KMS_API p11kms_rc p11kms_file_rewrapper_new(p11kms *h, const p11kms_caller *c, const char *new_key,
                                               p11kms_write_fn out, void *arg, p11kms_file_decryptor **rw)
{
    p11kms_rc rc;
    pk_error_clear();
    rc = dec_create(h, c, NULL, 0, 1, out, arg, rw);
    if (rc != P11KMS_OK) return rc;
    (*rw)->rewrap = true;
    if (new_key != NULL && ((*rw)->new_key = strdup(new_key)) == NULL) {
        p11kms_file_decryptor_free(*rw);
        *rw = NULL;
        return pk_fail(P11KMS_ERR_NO_MEMORY, "out of memory").code;
    }
    pk_esdk_dec_set_rewrap((*rw)->dec, rewrap_header, *rw);
    return P11KMS_OK;
}

P11KMS_API p11kms_rc p11kms_file_decrypt_update(p11kms_file_decryptor *dec, const uint8_t *p, size_t n)
{
    pk_error_clear();
    if (dec == NULL || (p == NULL && n > 0)) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no stream or data").code;
    return pk_esdk_dec_update(dec->dec, p, n).code;
}

P11KMS_API p11kms_rc p11kms_file_decrypt_final(p11kms_file_decryptor *dec, char **summary_json)
{
    pk_result r;
    pk_error_clear();
    if (summary_json) *summary_json = NULL;
    if (dec == NULL) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no stream given").code;
    r = pk_esdk_dec_final(dec->dec);
    if (pk_ok(r))
        r = summary(dec->arn, pk_esdk_dec_header(dec->dec), pk_esdk_dec_bytes(dec->dec),
                    pk_esdk_dec_frames(dec->dec), summary_json);
    return r.code;
}

P11KMS_API p11kms_rc p11kms_file_decryptor_context(const p11kms_file_decryptor *dec, const p11kms_kv **ctx,
                                                   size_t *nctx)
{
    const pk_esdk_header *hd = dec != NULL ? pk_esdk_dec_header(dec->dec) : NULL;
    pk_error_clear();
    if (ctx == NULL || nctx == NULL) return pk_fail(P11KMS_ERR_INVALID_ARGUMENT, "no output pointer given").code;
    *ctx = NULL;
    *nctx = 0;
    if (hd == NULL) return pk_fail(P11KMS_ERR_INVALID_STATE, "the message header is not verified yet").code;
    *ctx = hd->ctx;
    *nctx = hd->nctx;
    return P11KMS_OK;
}

P11KMS_API void p11kms_file_decryptor_free(p11kms_file_decryptor *dec)
{
    if (dec == NULL) return;
    pk_esdk_dec_free(dec->dec);
    free_ctx(dec->required, dec->nreq);
    free(dec->new_key);
    free(dec);
}
