/*
 * p11kms encrypt | decrypt | datakey | re-encrypt
 *
 * Plaintexts and data keys pass only through locked memory and are wiped;
 * they go to stdout or a 0600 file, never to an error message.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_session.h"
#include "util/codec.h"
#include "util/json_out.h"

#define PLAINTEXT_MAX 4096
/* AWS KMS's ciphertext blob limit: 6144 bytes, 8192 base64 characters (+ a CRLF). */
#define BLOB_MAX 6144
#define BLOB_TEXT_MAX (((BLOB_MAX + 2) / 3) * 4 + 2)

typedef struct crypto_args {
    const char *key;
    const char *in;
    const char *out;
    pk_cli_kvs ctx;
    pk_cli_kvs new_ctx;
    const char *spec;
    const char *bytes;
    bool no_plaintext;
} crypto_args;

/* Is the option (before any '=') one of the space-separated names in `allowed`? */
static bool allowed_opt(const char *allowed, const char *arg)
{
    char padded[128], needle[40];
    size_t n = strcspn(arg, "=");
    if (n >= 32) return false;
    snprintf(padded, sizeof(padded), " %s ", allowed);
    snprintf(needle, sizeof(needle), " %.*s ", (int)n, arg);
    return strstr(padded, needle) != NULL;
}

/* Options common to the four commands; `allowed` lists the ones this command takes. */
static int parse_args(pk_cli *cli, int argc, char **argv, const char *allowed, crypto_args *a)
{
    const char *v;
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        int ex = PK_EXIT_OK;
        const char *name = argv[i];
        if (pk_cli_common_opt(cli, argc, argv, &i)) continue;
        if (strncmp(name, "--", 2) != 0 || !allowed_opt(allowed, name))
            return pk_cli_usage("%s: unexpected '%s'", argv[0], name);
        if (strcmp(name, "--no-plaintext") == 0) a->no_plaintext = true;
        else if (pk_cli_optv(argc, argv, &i, "--key", &v)) a->key = v;
        else if (pk_cli_optv(argc, argv, &i, "--in", &v)) a->in = v;
        else if (pk_cli_optv(argc, argv, &i, "--out", &v)) a->out = v;
        else if (pk_cli_optv(argc, argv, &i, "--spec", &v)) a->spec = v;
        else if (pk_cli_optv(argc, argv, &i, "--bytes", &v)) a->bytes = v;
        else if (pk_cli_optv(argc, argv, &i, "--context", &v)) ex = pk_cli_kv_add(&a->ctx, "--context", v);
        else if (pk_cli_optv(argc, argv, &i, "--new-context", &v)) ex = pk_cli_kv_add(&a->new_ctx, "--new-context", v);
        else return pk_cli_usage("%s: unexpected '%s'", argv[0], name);
        if (ex != PK_EXIT_OK) return ex;
    }
    return PK_EXIT_OK;
}

static void args_free(crypto_args *a)
{
    pk_cli_kv_free(&a->ctx);
    pk_cli_kv_free(&a->new_ctx);
}

/* The key id and version a blob names, read by the library (docs/FORMAT.md). */
static void blob_key_id(const p11kms_buf *blob, char id[37], uint32_t *version)
{
    uint32_t v = 0;
    if (p11kms_blob_info(p11kms_buf_data(blob), p11kms_buf_len(blob), id, &v) != P11KMS_OK) id[0] = '\0';
    if (version != NULL) *version = v;
}

/* The blob as one base64 line, or {"KeyId":..,"CiphertextBlob":..} with --json. */
static int print_blob(const pk_cli *cli, const p11kms_buf *blob)
{
    size_t n = p11kms_buf_len(blob);
    char *b64 = malloc(pk_base64_len(n) + 1), id[37];
    pk_buf out = {0};
    pk_json_out j;
    int ex;

    if (b64 == NULL) return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    pk_base64_encode(p11kms_buf_data(blob), n, b64);
    pk_jo_init(&j, &out);
    if (cli->json) {
        blob_key_id(blob, id, NULL);
        pk_jo_obj_begin(&j);
        pk_jo_kstr(&j, "KeyId", id);
        pk_jo_kstr(&j, "CiphertextBlob", b64);
        pk_jo_obj_end(&j);
        ex = pk_cli_print_jo(&j);
    } else {
        puts(b64);
        ex = fflush(stdout) == 0 ? PK_EXIT_OK : PK_EXIT_FAILED;
    }
    free(b64);
    return ex;
}

/*
 * A JSON object whose last member is secret: the public head comes from
 * the JSON writer (keys and values escaped), the secret is appended as
 * base64 (nothing to escape) in locked memory and written with write(2).
 * head is an object still open; secret NULL closes it without that member.
 */
static int print_secret_json(pk_json_out *head, const char *key, const uint8_t *secret, size_t n)
{
    pk_secbuf out = PK_SECBUF_INIT;
    pk_result r = pk_jo_result(head);
    int ex = PK_EXIT_FAILED;

    if (pk_ok(r) && secret != NULL) pk_jo_key(head, key);
    PK_TRY(pk_jo_result(head));
    PK_TRY(pk_secbuf_alloc(&out, head->buf->len + pk_base64_len(n) + 8));
    PK_TRY(pk_secbuf_append(&out, head->buf->data, head->buf->len));
    if (secret != NULL) {
        PK_TRY(pk_secbuf_append(&out, "\"", 1));
        pk_base64_encode(secret, n, (char *)out.data + out.len);
        out.len += pk_base64_len(n);
        PK_TRY(pk_secbuf_append(&out, "\"", 1));
    }
    PK_TRY(pk_secbuf_append(&out, "}\n", 2));
    ex = pk_cli_write_stdout(out.data, out.len);
out:
    pk_secbuf_free(&out);
    pk_buf_free(head->buf);
    return pk_ok(r) ? ex : pk_cli_fail(r.code);
}

/* Read a base64 blob (file or stdin). Bad base64 is just a bad ciphertext. */
static int read_blob(const char *in, pk_buf *blob)
{
    pk_buf text = {0};
    size_t n = 0;
    int ex = pk_cli_read_file(in ? in : "-", BLOB_TEXT_MAX,
                              "a ciphertext blob is at most 6144 bytes (8192 base64 characters)", &text);
    if (ex != PK_EXIT_OK) {
        pk_buf_free(&text);
        return ex;
    }
    while (text.len > 0 && (text.data[text.len - 1] == '\n' || text.data[text.len - 1] == '\r' ||
                            text.data[text.len - 1] == ' '))
        text.len--;
    if (pk_failed(pk_buf_reserve(blob, text.len)) ||
        pk_failed(pk_base64_decode((const char *)text.data, text.len, blob->data, &n))) {
        pk_buf_free(&text);
        fprintf(stderr, "p11kms: %s\n", p11kms_strerror(P11KMS_ERR_CIPHERTEXT_INVALID));
        return p11kms_exit_code(P11KMS_ERR_CIPHERTEXT_INVALID);
    }
    blob->len = n;
    pk_buf_free(&text);
    return PK_EXIT_OK;
}

/* Over 4096 bytes: point to envelope encryption. Only max+1 bytes were read; a file's size is known. */
static int too_large(const char *in)
{
    struct stat st;
    if (in != NULL && strcmp(in, "-") != 0 && stat(in, &st) == 0)
        fprintf(stderr, "p11kms: encrypt: plaintext is %lld bytes; ", (long long)st.st_size);
    else
        fprintf(stderr, "p11kms: encrypt: plaintext is more than %d bytes; ", PLAINTEXT_MAX);
    fprintf(stderr, "encrypt takes at most %d bytes: use 'p11kms datakey' for envelope encryption\n", PLAINTEXT_MAX);
    return PK_EXIT_USAGE;
}

static int cmd_encrypt(pk_cli *cli, int argc, char **argv)
{
    crypto_args a;
    pk_secbuf pt = PK_SECBUF_INIT;
    pk_cli_session s = {0};
    p11kms_buf *blob = NULL;
    p11kms_rc rc;
    int ex;

    if ((ex = parse_args(cli, argc, argv, "--key --context --in", &a)) != PK_EXIT_OK) goto out;
    if (a.key == NULL) {
        ex = pk_cli_usage("encrypt --key KEY [--context k=v]... [--in FILE]");
        goto out;
    }
    if ((ex = pk_cli_read_secret(a.in, PLAINTEXT_MAX, &pt)) != PK_EXIT_OK) goto out;
    if (pt.len > PLAINTEXT_MAX) {
        ex = too_large(a.in);
        goto out;
    }
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) goto out;
    rc = p11kms_encrypt(s.h, s.caller, a.key, a.ctx.kv, a.ctx.n, pt.data, pt.len, &blob);
    ex = rc == P11KMS_OK ? print_blob(cli, blob) : pk_cli_fail(rc);
out:
    p11kms_buf_free(blob);
    pk_secbuf_free(&pt);
    pk_cli_session_close(&s);
    args_free(&a);
    return ex;
}

/* Plaintext to --out or stdout; with --json, {"KeyId":..,"Plaintext":base64} (no Plaintext with --out). */
static int print_plaintext(const pk_cli *cli, const char *out, const char *key_id, const p11kms_buf *pt)
{
    bool to_file = out != NULL && strcmp(out, "-") != 0;
    pk_buf head = {0};
    pk_json_out j;
    int ex;

    if (!cli->json) return pk_cli_write_secret(out, p11kms_buf_data(pt), p11kms_buf_len(pt));
    if (to_file && (ex = pk_cli_write_file_atomic(out, p11kms_buf_data(pt), p11kms_buf_len(pt))) != PK_EXIT_OK)
        return ex;
    pk_jo_init(&j, &head);
    pk_jo_obj_begin(&j);
    pk_jo_kstr(&j, "KeyId", key_id);
    return print_secret_json(&j, "Plaintext", to_file ? NULL : p11kms_buf_data(pt), p11kms_buf_len(pt));
}

static int cmd_decrypt(pk_cli *cli, int argc, char **argv)
{
    crypto_args a;
    pk_buf blob = {0};
    pk_cli_session s = {0};
    p11kms_buf *pt = NULL;
    char *key_id = NULL;
    p11kms_rc rc;
    int ex;

    if ((ex = parse_args(cli, argc, argv, "--context --in --out", &a)) != PK_EXIT_OK) goto out;
    if ((ex = read_blob(a.in, &blob)) != PK_EXIT_OK) goto out;
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) goto out;
    rc = p11kms_decrypt(s.h, s.caller, a.ctx.kv, a.ctx.n, blob.data, blob.len, &pt, &key_id);
    ex = rc == P11KMS_OK ? print_plaintext(cli, a.out, key_id, pt) : pk_cli_fail(rc);
out:
    p11kms_free(key_id);
    p11kms_buf_free(pt);
    pk_buf_free(&blob);
    pk_cli_session_close(&s);
    args_free(&a);
    return ex;
}

static int datakey_size(const crypto_args *a, size_t *bytes)
{
    char *end = NULL;
    unsigned long n;
    if (a->spec != NULL && a->bytes != NULL) return pk_cli_usage("datakey: give --spec or --bytes, not both");
    if (a->bytes != NULL) {
        n = strtoul(a->bytes, &end, 10);
        if (*a->bytes == '\0' || *a->bytes == '-' || *end != '\0')
            return pk_cli_usage("datakey: --bytes '%s' is not a number", a->bytes);
        *bytes = n;
        return PK_EXIT_OK;
    }
    if (a->spec == NULL || strcmp(a->spec, "AES_256") == 0) *bytes = 32;
    else if (strcmp(a->spec, "AES_128") == 0) *bytes = 16;
    else return pk_cli_usage("datakey: --spec must be AES_256 or AES_128");
    return PK_EXIT_OK;
}

/*
 * {"KeyId":..,"KeyVersion":..,"CiphertextBlob":..,"Plaintext":..}; with
 * --out the plaintext key goes (raw bytes) to a new 0600 file instead.
 */
static int print_datakey(const char *out, const p11kms_buf *blob, const p11kms_buf *pt)
{
    const uint8_t *b = p11kms_buf_data(blob);
    size_t n = p11kms_buf_len(blob);
    char id[37], *b64 = malloc(pk_base64_len(n) + 1);
    uint32_t version;
    pk_buf head = {0};
    pk_json_out j;
    int ex;

    if (b64 == NULL) return pk_cli_fail(P11KMS_ERR_NO_MEMORY);
    if (out != NULL && (ex = pk_cli_write_file_atomic(out, p11kms_buf_data(pt), p11kms_buf_len(pt))) != PK_EXIT_OK) {
        free(b64);
        return ex;
    }
    blob_key_id(blob, id, &version);
    pk_base64_encode(b, n, b64);
    pk_jo_init(&j, &head);
    pk_jo_obj_begin(&j);
    pk_jo_kstr(&j, "KeyId", id);
    pk_jo_kint(&j, "KeyVersion", version);
    pk_jo_kstr(&j, "CiphertextBlob", b64);
    free(b64);
    if (out != NULL || pt == NULL) return print_secret_json(&j, NULL, NULL, 0);
    return print_secret_json(&j, "Plaintext", p11kms_buf_data(pt), p11kms_buf_len(pt));
}

static int cmd_datakey(pk_cli *cli, int argc, char **argv)
{
    crypto_args a;
    pk_cli_session s = {0};
    p11kms_buf *pt = NULL, *blob = NULL;
    size_t bytes = 0;
    p11kms_rc rc;
    int ex;

    if ((ex = parse_args(cli, argc, argv, "--key --context --spec --bytes --no-plaintext --out", &a)) != PK_EXIT_OK)
        goto out;
    if (a.key == NULL) {
        ex = pk_cli_usage("datakey --key KEY [--spec AES_256|AES_128 | --bytes N] [--no-plaintext | --out FILE] "
                          "[--context k=v]...");
        goto out;
    }
    if (a.out != NULL && (a.no_plaintext || strcmp(a.out, "-") == 0)) {
        ex = pk_cli_usage("datakey: --out FILE takes the plaintext key; it cannot be combined with --no-plaintext or -");
        goto out;
    }
    if ((ex = datakey_size(&a, &bytes)) != PK_EXIT_OK) goto out;
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) goto out;
    rc = p11kms_generate_data_key(s.h, s.caller, a.key, a.ctx.kv, a.ctx.n, bytes, a.no_plaintext ? NULL : &pt, &blob);
    ex = rc == P11KMS_OK ? print_datakey(a.out, blob, pt) : pk_cli_fail(rc);
out:
    p11kms_buf_free(pt);
    p11kms_buf_free(blob);
    pk_cli_session_close(&s);
    args_free(&a);
    return ex;
}

static int cmd_reencrypt(pk_cli *cli, int argc, char **argv)
{
    crypto_args a;
    pk_buf blob = {0};
    pk_cli_session s = {0};
    p11kms_buf *out = NULL;
    p11kms_rc rc;
    int ex;

    if ((ex = parse_args(cli, argc, argv, "--key --context --new-context --in", &a)) != PK_EXIT_OK) goto done;
    if (a.key == NULL) {
        ex = pk_cli_usage("re-encrypt --key KEY [--context k=v]... [--new-context k=v]... [--in FILE]");
        goto done;
    }
    if ((ex = read_blob(a.in, &blob)) != PK_EXIT_OK) goto done;
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) goto done;
    rc = p11kms_reencrypt(s.h, s.caller, blob.data, blob.len, a.ctx.kv, a.ctx.n, a.key, a.new_ctx.kv, a.new_ctx.n,
                          &out);
    ex = rc == P11KMS_OK ? print_blob(cli, out) : pk_cli_fail(rc);
done:
    p11kms_buf_free(out);
    pk_buf_free(&blob);
    pk_cli_session_close(&s);
    args_free(&a);
    return ex;
}

int pk_cmd_encrypt(pk_cli *cli, int argc, char **argv) { return cmd_encrypt(cli, argc, argv); }
int pk_cmd_decrypt(pk_cli *cli, int argc, char **argv) { return cmd_decrypt(cli, argc, argv); }
int pk_cmd_datakey(pk_cli *cli, int argc, char **argv) { return cmd_datakey(cli, argc, argv); }
int pk_cmd_reencrypt(pk_cli *cli, int argc, char **argv) { return cmd_reencrypt(cli, argc, argv); }
