/*
 * A minimal libp11kms client: encrypt a message under a key with an
 * encryption context, decrypt it again, and print what came back.
 *
 *   cc envelope.c $(pkg-config --cflags --libs p11kms) -o envelope
 *   P11KMS_CONFIG=/etc/p11kms/p11kms.conf ./envelope ARN KEY 'message'
 *
 * It uses only the public header, as every client of the library should.
 */
#include <stdio.h>
#include <string.h>

#include <p11kms/p11kms.h>

static int fail(const char *what, p11kms_rc rc)
{
    fprintf(stderr, "envelope: %s: %s (%s)\n", what, p11kms_strerror(rc), p11kms_last_error());
    return p11kms_exit_code(rc);
}

int main(int argc, char **argv)
{
    p11kms_config *cfg = NULL;
    p11kms *h = NULL;
    p11kms_caller *caller = NULL;
    p11kms_buf *blob = NULL, *pt = NULL;
    char *key_id = NULL;
    /* Order does not matter: the context is bound as a set. */
    const p11kms_kv ctx[] = {{"job", "orders"}, {"purpose", "example"}};
    p11kms_rc rc;
    int ex = 0;

    if (argc != 4) {
        fprintf(stderr, "usage: envelope PRINCIPAL-ARN KEY MESSAGE\n");
        return 2;
    }
    if ((rc = p11kms_config_load(NULL, &cfg)) != P11KMS_OK) return fail("config", rc);
    if ((rc = p11kms_caller_new(argv[1], &caller)) != P11KMS_OK) {
        ex = fail("caller", rc);
        goto out;
    }
    if ((rc = p11kms_open(cfg, &h)) != P11KMS_OK) {
        ex = fail("open", rc);
        goto out;
    }
    rc = p11kms_encrypt(h, caller, argv[2], ctx, 2, (const uint8_t *)argv[3], strlen(argv[3]), &blob);
    if (rc != P11KMS_OK) {
        ex = fail("encrypt", rc);
        goto out;
    }
    rc = p11kms_decrypt(h, caller, ctx, 2, p11kms_buf_data(blob), p11kms_buf_len(blob), &pt, &key_id);
    if (rc != P11KMS_OK) {
        ex = fail("decrypt", rc);
        goto out;
    }
    printf("%zu-byte blob under key %s decrypts to: %.*s\n", p11kms_buf_len(blob), key_id,
           (int)p11kms_buf_len(pt), (const char *)p11kms_buf_data(pt));
out:
    p11kms_buf_free(pt); /* wipes the plaintext */
    p11kms_buf_free(blob);
    p11kms_free(key_id);
    p11kms_close(h);
    p11kms_caller_free(caller);
    p11kms_config_free(cfg);
    return ex;
}
