/* Cryptographic operations: Encrypt, Decrypt, ReEncrypt, data keys, GenerateRandom. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "daemon/kms_impl.h"

void op_encrypt(op_ctx *o)
{
    p11kms_kv ctx[MAX_CONTEXT];
    const char *key = k_field_str(o, "KeyId", true, 2048);
    size_t n = 0, nctx = k_field_context(o, "EncryptionContext", ctx);
    uint8_t *pt = k_field_blob(o, "Plaintext", true, MAX_PLAINTEXT, &n);
    p11kms_buf *blob = NULL;
    char kid[37];
    p11kms_rc rc;
    k_check_algorithm(o, "EncryptionAlgorithm");
    if (o->done) goto out;
    rc = p11kms_encrypt(o->k->h, o->caller, key, ctx, nctx, pt, n, &blob);
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        goto out;
    }
    k_out_blob(o, "CiphertextBlob", p11kms_buf_data(blob), p11kms_buf_len(blob));
    k_blob_key_id(p11kms_buf_data(blob), p11kms_buf_len(blob), kid);
    k_out_arn(o, "KeyId", kid);
    pk_jo_kstr(&o->j, "EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
out:
    p11kms_buf_free(blob);
    d_wipe_free(pt, n);
}

/* A KeyId given with Decrypt must name the blob's key (AWS: IncorrectKeyException). */
static bool key_matches(op_ctx *o, const char *given, const char *kid)
{
    char *a = NULL, *b = NULL;
    bool same = true;
    if (given == NULL || strncmp(given, "alias/", 6) == 0 || strstr(given, ":alias/") != NULL) return true;
    if (p11kms_key_arn(o->k->h, given, &a) == P11KMS_OK && p11kms_key_arn(o->k->h, kid, &b) == P11KMS_OK)
        same = strcasecmp(a, b) == 0;
    p11kms_free(a);
    p11kms_free(b);
    if (!same) k_fail(o, 400, "IncorrectKeyException", "the ciphertext was not encrypted under the KeyId given");
    return same;
}

void op_decrypt(op_ctx *o)
{
    p11kms_kv ctx[MAX_CONTEXT];
    size_t n = 0, nctx = k_field_context(o, "EncryptionContext", ctx);
    uint8_t *blob = k_field_blob(o, "CiphertextBlob", true, MAX_CIPHERTEXT, &n);
    const char *given = k_field_str(o, "KeyId", false, 2048);
    p11kms_buf *pt = NULL;
    char *key_id = NULL, kid[37];
    p11kms_rc rc;
    k_check_algorithm(o, "EncryptionAlgorithm");
    if (o->done) goto out;
    k_blob_key_id(blob, n, kid);
    if (!key_matches(o, given, kid)) goto out;
    rc = p11kms_decrypt(o->k->h, o->caller, ctx, nctx, blob, n, &pt, &key_id);
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        goto out;
    }
    k_out_arn(o, "KeyId", key_id);
    k_out_blob(o, "Plaintext", p11kms_buf_data(pt), p11kms_buf_len(pt));
    pk_jo_kstr(&o->j, "EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
out:
    p11kms_buf_free(pt);
    p11kms_free(key_id);
    d_wipe_free(blob, n);
}

void op_reencrypt(op_ctx *o)
{
    p11kms_kv sctx[MAX_CONTEXT], dctx[MAX_CONTEXT];
    size_t n = 0, ns = k_field_context(o, "SourceEncryptionContext", sctx);
    size_t nd = k_field_context(o, "DestinationEncryptionContext", dctx);
    uint8_t *blob = k_field_blob(o, "CiphertextBlob", true, MAX_CIPHERTEXT, &n);
    const char *dst = k_field_str(o, "DestinationKeyId", true, 2048);
    const char *src = k_field_str(o, "SourceKeyId", false, 2048);
    p11kms_buf *out = NULL;
    char skid[37], dkid[37];
    p11kms_rc rc;
    k_check_algorithm(o, "SourceEncryptionAlgorithm");
    k_check_algorithm(o, "DestinationEncryptionAlgorithm");
    if (o->done) goto out;
    k_blob_key_id(blob, n, skid);
    if (!key_matches(o, src, skid)) goto out;
    rc = p11kms_reencrypt(o->k->h, o->caller, blob, n, sctx, ns, dst, dctx, nd, &out);
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        goto out;
    }
    k_out_blob(o, "CiphertextBlob", p11kms_buf_data(out), p11kms_buf_len(out));
    k_out_arn(o, "SourceKeyId", skid);
    k_blob_key_id(p11kms_buf_data(out), p11kms_buf_len(out), dkid);
    k_out_arn(o, "KeyId", dkid);
    pk_jo_kstr(&o->j, "SourceEncryptionAlgorithm", "SYMMETRIC_DEFAULT");
    pk_jo_kstr(&o->j, "DestinationEncryptionAlgorithm", "SYMMETRIC_DEFAULT");
out:
    p11kms_buf_free(out);
    d_wipe_free(blob, n);
}

static void data_key(op_ctx *o, bool with_plaintext)
{
    p11kms_kv ctx[MAX_CONTEXT];
    const char *key = k_field_str(o, "KeyId", true, 2048);
    const char *spec = k_field_str(o, "KeySpec", false, 16);
    size_t nctx = k_field_context(o, "EncryptionContext", ctx);
    long bytes = 0;
    p11kms_buf *pt = NULL, *blob = NULL;
    char kid[37];
    p11kms_rc rc;
    bool have_n = k_field_int(o, "NumberOfBytes", 1, MAX_DATA_KEY, &bytes);
    if (o->done) return;
    if ((spec == NULL) == !have_n) {
        k_fail(o, 400, "ValidationException", "give either KeySpec or NumberOfBytes");
        return;
    }
    if (spec != NULL) {
        if (strcmp(spec, "AES_256") == 0) bytes = 32;
        else if (strcmp(spec, "AES_128") == 0) bytes = 16;
        else {
            k_fail(o, 400, "ValidationException", "KeySpec must be AES_256 or AES_128");
            return;
        }
    }
    rc = p11kms_generate_data_key(o->k->h, o->caller, key, ctx, nctx, (size_t)bytes, with_plaintext ? &pt : NULL,
                                  &blob);
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        return;
    }
    k_out_blob(o, "CiphertextBlob", p11kms_buf_data(blob), p11kms_buf_len(blob));
    if (with_plaintext) k_out_blob(o, "Plaintext", p11kms_buf_data(pt), p11kms_buf_len(pt));
    k_blob_key_id(p11kms_buf_data(blob), p11kms_buf_len(blob), kid);
    k_out_arn(o, "KeyId", kid);
    p11kms_buf_free(pt);
    p11kms_buf_free(blob);
}

void op_generate_data_key(op_ctx *o) { data_key(o, true); }
void op_generate_data_key_wp(op_ctx *o) { data_key(o, false); }

/*
 * The public API has no bare RNG call: a data key of the service key is
 * the token's RNG output, authorised like any GenerateDataKey on it.
 */
void op_generate_random(op_ctx *o)
{
    long bytes = 0;
    p11kms_buf *pt = NULL, *blob = NULL;
    p11kms_rc rc;
    if (!k_field_int(o, "NumberOfBytes", 1, MAX_DATA_KEY, &bytes)) {
        if (!o->done) k_fail(o, 400, "ValidationException", "NumberOfBytes is required (1 to 1024)");
        return;
    }
    rc = p11kms_generate_data_key(o->k->h, o->caller, SERVICE_ALIAS, NULL, 0, (size_t)bytes, &pt, &blob);
    if (rc != P11KMS_OK) {
        k_fail_rc(o, rc);
        return;
    }
    k_out_blob(o, "Plaintext", p11kms_buf_data(pt), p11kms_buf_len(pt));
    p11kms_buf_free(pt);
    p11kms_buf_free(blob);
}

