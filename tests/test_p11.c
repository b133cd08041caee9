/* Unit tests for src/p11 against a real SoftHSM token (no mocks). */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf/conf.h"
#include "lib/fixture.h"
#include "p11/p11.h"

static pk_fixture fx;
static pk_p11 *p11;

static pk_keyid make_id(const char *s)
{
    pk_keyid id;
    memset(&id, 0, sizeof(id));
    id.len = strlen(s);
    memcpy(id.bytes, s, id.len);
    return id;
}

static pk_p11_opts default_opts(const p11kms_config *cfg)
{
    pk_p11_opts o;
    memset(&o, 0, sizeof(o));
    o.module = p11kms_config_get(cfg, "module");
    o.token_uri = p11kms_config_get(cfg, "token");
    o.cfg = cfg;
    o.pool_size = 4;
    o.require_login = true;
    o.read_write = true;
    return o;
}

static int suite_init(void)
{
    pk_p11_opts o;
    pk_fixture_setup(&fx);
    o = default_opts(fx.cfg);
    return pk_ok(pk_p11_open(&o, &p11)) ? 0 : 1;
}

static int suite_clean(void)
{
    pk_p11_close(p11);
    pk_fixture_teardown(&fx);
    return 0;
}

static void test_p11_probe_finds_required_mechanisms(void)
{
    const pk_p11_info *info = pk_p11_get_info(p11);
    CU_ASSERT_STRING_EQUAL(info->label, "p11kms-test");
    CU_ASSERT_EQUAL(info->login_rc, P11KMS_OK);
    CU_ASSERT_TRUE(pk_ok(pk_p11_require_mechanisms(p11)));
    /* SoftHSM's RFC 5649 is 0x210A and it must pass the known answer. */
    CU_ASSERT_EQUAL(info->mech[PK_MECH_AES_KWP], 0x210AUL);
    CU_ASSERT_TRUE(info->kwp_verified);
    CU_ASSERT_STRING_EQUAL(pk_mech_name(info->mech[PK_MECH_AES_GCM]), "CKM_AES_GCM");
}

static void test_p11_cmk_attributes_are_locked_down(void)
{
    pk_keyid id = make_id("test:cmk:attrs");
    pk_key_attrs a;
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_generate_key(p11, PK_KEY_AES_CMK, &id, "p11kms:test:attrs")));
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_key_attrs(p11, &id, &a)));
    CU_ASSERT_TRUE(a.sensitive);
    CU_ASSERT_FALSE(a.extractable);
    CU_ASSERT_TRUE(a.never_extractable);
    CU_ASSERT_TRUE(a.always_sensitive);
    CU_ASSERT_TRUE(a.local);
    CU_ASSERT_TRUE(a.token);
    CU_ASSERT_TRUE(a.encrypt && a.decrypt && a.wrap && a.unwrap);
    CU_ASSERT_FALSE(a.sign || a.verify || a.derive);
    CU_ASSERT_STRING_EQUAL(a.label, "p11kms:test:attrs");
}

static void test_p11_gcm_round_trip_and_tamper(void)
{
    pk_keyid id = make_id("test:cmk:gcm");
    uint8_t iv[PK_GCM_IV_LEN] = {1, 2, 3};
    uint8_t ct[64 + PK_GCM_TAG_LEN];
    const char *msg = "sixty-four bytes of plaintext, more or less, for the GCM test..";
    pk_secbuf pt = PK_SECBUF_INIT;
    pk_result r;

    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_generate_key(p11, PK_KEY_AES_CMK, &id, "p11kms:test:gcm")));
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_gcm_encrypt(p11, &id, NULL, iv, pk_bytes_of("aad", 3),
                                                  pk_bytes_of(msg, 64), ct)));
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_gcm_decrypt(p11, &id, NULL, iv, pk_bytes_of("aad", 3),
                                                  pk_bytes_of(ct, sizeof(ct)), &pt)));
    CU_ASSERT_EQUAL(pt.len, 64);
    CU_ASSERT_EQUAL(memcmp(pt.data, msg, 64), 0);

    r = pk_p11_gcm_decrypt(p11, &id, NULL, iv, pk_bytes_of("aaX", 3), pk_bytes_of(ct, sizeof(ct)), &pt);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_CIPHERTEXT_INVALID);
    CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "ciphertext invalid or context mismatch");
    CU_ASSERT_EQUAL(pt.len, 0);
    ct[70] ^= 0x01; /* a tag byte */
    r = pk_p11_gcm_decrypt(p11, &id, NULL, iv, pk_bytes_of("aad", 3), pk_bytes_of(ct, sizeof(ct)), &pt);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_CIPHERTEXT_INVALID);
    ct[70] ^= 0x01;
    r = pk_p11_gcm_decrypt(p11, &id, NULL, iv, pk_bytes_of("aad", 3), pk_bytes_of(ct, 10), &pt);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_CIPHERTEXT_INVALID);
    /* The sessions are still usable after failed operations. */
    for (int i = 0; i < 8; i++)
        CU_ASSERT_TRUE(pk_ok(pk_p11_gcm_decrypt(p11, &id, NULL, iv, pk_bytes_of("aad", 3),
                                                pk_bytes_of(ct, sizeof(ct)), &pt)));
    pk_secbuf_free(&pt);
}

static void test_p11_hmac_is_keyed(void)
{
    pk_keyid a = make_id("test:hmac:a"), b = make_id("test:hmac:b");
    uint8_t m1[PK_HMAC_LEN], m2[PK_HMAC_LEN], m3[PK_HMAC_LEN];
    pk_key_attrs at;
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_generate_key(p11, PK_KEY_HMAC, &a, "p11kms:test:hmac-a")));
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_generate_key(p11, PK_KEY_HMAC, &b, "p11kms:test:hmac-b")));
    CU_ASSERT_TRUE(pk_ok(pk_p11_hmac(p11, &a, pk_bytes_of("record", 6), m1)));
    CU_ASSERT_TRUE(pk_ok(pk_p11_hmac(p11, &a, pk_bytes_of("record", 6), m2)));
    CU_ASSERT_TRUE(pk_ok(pk_p11_hmac(p11, &b, pk_bytes_of("record", 6), m3)));
    CU_ASSERT_EQUAL(memcmp(m1, m2, PK_HMAC_LEN), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(m1, m3, PK_HMAC_LEN), 0);
    CU_ASSERT_TRUE(pk_ok(pk_p11_key_attrs(p11, &a, &at)));
    CU_ASSERT_TRUE(at.sign && at.verify);
    CU_ASSERT_FALSE(at.encrypt || at.decrypt || at.wrap || at.unwrap || at.extractable);
}

static void test_p11_data_keys_wrap_unwrap_and_evict(void)
{
    pk_keyid kek = make_id("test:cmk:kek"), kek2 = make_id("test:cmk:kek2");
    uint8_t w[4][PK_KWP_WRAPPED_LEN], rw[PK_KWP_WRAPPED_LEN];
    size_t wl = 0, rwl = 0;
    uint8_t iv[PK_GCM_IV_LEN] = {9};
    uint8_t ct[4][8 + PK_GCM_TAG_LEN];
    pk_secbuf pt = PK_SECBUF_INIT;
    pk_p11_stats st0, st;

    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_generate_key(p11, PK_KEY_AES_CMK, &kek, "p11kms:test:kek")));
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_generate_key(p11, PK_KEY_AES_CMK, &kek2, "p11kms:test:kek2")));
    pk_p11_set_data_key_limit(p11, 2);
    pk_p11_get_stats(p11, &st0);
    for (int i = 0; i < 4; i++) {
        char name[32];
        pk_keyid dk;
        pk_p11_dk src;
        snprintf(name, sizeof(name), "test:dk:%d", i);
        dk = make_id(name);
        CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_generate_wrapped(p11, &kek, w[i], &wl)));
        CU_ASSERT_EQUAL(wl, PK_KWP_WRAPPED_LEN);
        src.kek = &kek;
        src.wrapped = pk_bytes_of(w[i], wl);
        CU_ASSERT_TRUE(pk_ok(pk_p11_gcm_encrypt(p11, &dk, &src, iv, pk_bytes_of("", 0), pk_bytes_of("12345678", 8),
                                                ct[i])));
    }
    pk_p11_get_stats(p11, &st);
    CU_ASSERT_EQUAL(st.unwraps - st0.unwraps, 4);
    CU_ASSERT_EQUAL(st.evictions - st0.evictions, 2);
    CU_ASSERT_EQUAL(st.data_keys_cached, 2);
    CU_ASSERT_EQUAL(st.find_sweeps, st0.find_sweeps); /* a miss costs one unwrap, never a search */
    /* An evicted key comes back by unwrapping again and still decrypts. */
    {
        pk_keyid dk = make_id("test:dk:0");
        pk_p11_dk src = {&kek, pk_bytes_of(w[0], wl)};
        CU_ASSERT_FALSE(pk_p11_data_key_cached(p11, &dk));
        CU_ASSERT_TRUE(pk_ok(pk_p11_gcm_decrypt(p11, &dk, &src, iv, pk_bytes_of("", 0),
                                                pk_bytes_of(ct[0], sizeof(ct[0])), &pt)));
        CU_ASSERT_EQUAL(memcmp(pt.data, "12345678", 8), 0);
        CU_ASSERT_TRUE(pk_p11_data_key_cached(p11, &dk));
    }
    /* Re-wrapping under another CMK keeps the same key inside. */
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_rewrap(p11, &kek, &kek2, pk_bytes_of(w[1], wl), rw, &rwl)));
    {
        pk_keyid dk = make_id("test:dk:1:rewrapped");
        pk_p11_dk src = {&kek2, pk_bytes_of(rw, rwl)};
        CU_ASSERT_TRUE(pk_ok(pk_p11_gcm_decrypt(p11, &dk, &src, iv, pk_bytes_of("", 0),
                                                pk_bytes_of(ct[1], sizeof(ct[1])), &pt)));
    }
    /* A corrupted wrapped key is refused as invalid ciphertext. */
    {
        pk_keyid dk = make_id("test:dk:bad");
        pk_p11_dk src = {&kek, pk_bytes_of(w[2], wl)};
        pk_result r;
        w[2][3] ^= 0x80;
        r = pk_p11_gcm_decrypt(p11, &dk, &src, iv, pk_bytes_of("", 0), pk_bytes_of(ct[2], sizeof(ct[2])), &pt);
        CU_ASSERT_EQUAL(r.code, P11KMS_ERR_CIPHERTEXT_INVALID);
    }
    pk_p11_set_data_key_limit(p11, 4096);
    pk_secbuf_free(&pt);
}

static void test_p11_missing_key_is_not_found(void)
{
    pk_keyid id = make_id("test:none");
    uint8_t iv[PK_GCM_IV_LEN] = {0}, out[32];
    bool exists = true;
    pk_result r = pk_p11_gcm_encrypt(p11, &id, NULL, iv, pk_bytes_of("", 0), pk_bytes_of("x", 1), out);
    CU_ASSERT_EQUAL(r.code, P11KMS_ERR_NOT_FOUND);
    CU_ASSERT_STRING_EQUAL(p11kms_last_error(), "key object is missing from the token");
    CU_ASSERT_TRUE(pk_ok(pk_p11_key_exists(p11, &id, &exists)));
    CU_ASSERT_FALSE(exists);
}

static void test_p11_destroy_removes_object(void)
{
    pk_keyid id = make_id("test:cmk:destroy");
    bool exists = false;
    uint8_t iv[PK_GCM_IV_LEN] = {0}, out[32];
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_generate_key(p11, PK_KEY_AES_CMK, &id, "p11kms:test:destroy")));
    CU_ASSERT_TRUE(pk_ok(pk_p11_gcm_encrypt(p11, &id, NULL, iv, pk_bytes_of("", 0), pk_bytes_of("x", 1), out)));
    CU_ASSERT_TRUE(pk_ok(pk_p11_key_exists(p11, &id, &exists)));
    CU_ASSERT_TRUE(exists);
    CU_ASSERT_TRUE(pk_ok(pk_p11_destroy_key(p11, &id)));
    CU_ASSERT_TRUE(pk_ok(pk_p11_key_exists(p11, &id, &exists)));
    CU_ASSERT_FALSE(exists);
    CU_ASSERT_EQUAL(pk_p11_gcm_encrypt(p11, &id, NULL, iv, pk_bytes_of("", 0), pk_bytes_of("x", 1), out).code,
                    P11KMS_ERR_NOT_FOUND);
    CU_ASSERT_TRUE(pk_ok(pk_p11_destroy_key(p11, &id))); /* destroying twice is fine */
}

static void test_p11_list_objects_by_label_prefix(void)
{
    pk_p11_object *objs = NULL;
    size_t n = 0;
    bool saw_attrs = false;
    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_list_objects(p11, "p11kms:test:", &objs, &n)));
    CU_ASSERT_TRUE(n >= 3);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(strncmp(objs[i].label, "p11kms:test:", 12), 0);
        if (strcmp(objs[i].label, "p11kms:test:attrs") == 0) saw_attrs = true;
    }
    CU_ASSERT_TRUE(saw_attrs);
    free(objs);
}

static void test_p11_reconnects_after_sessions_drop(void)
{
    pk_keyid id = make_id("test:cmk:gcm");
    uint8_t iv[PK_GCM_IV_LEN] = {7}, out[32];
    pk_p11_stats st0, st;
    pk_p11_get_stats(p11, &st0);
    pk_p11_test_drop_sessions(p11);
    CU_ASSERT_TRUE(pk_ok(pk_p11_gcm_encrypt(p11, &id, NULL, iv, pk_bytes_of("", 0), pk_bytes_of("x", 1), out)));
    pk_p11_get_stats(p11, &st);
    CU_ASSERT_EQUAL(st.reconnects - st0.reconnects, 1);
}

static void test_p11_child_after_fork_reinitialises(void)
{
    pk_keyid id = make_id("test:cmk:gcm");
    pid_t pid = fork();
    if (pid == 0) {
        uint8_t iv[PK_GCM_IV_LEN] = {8}, out[32];
        pk_result r = pk_p11_gcm_encrypt(p11, &id, NULL, iv, pk_bytes_of("", 0), pk_bytes_of("x", 1), out);
        _exit(pk_ok(r) ? 0 : 1);
    }
    int status = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The parent's handle is untouched by the child's re-initialisation. */
    uint8_t iv[PK_GCM_IV_LEN] = {9}, out[32];
    CU_ASSERT_TRUE(pk_ok(pk_p11_gcm_encrypt(p11, &id, NULL, iv, pk_bytes_of("", 0), pk_bytes_of("x", 1), out)));
}

#define THREADS 4
#define OPS_PER_THREAD 300

static void *worker(void *arg)
{
    pk_keyid id = make_id("test:cmk:gcm");
    uintptr_t failures = 0;
    pk_secbuf pt = PK_SECBUF_INIT;
    (void)arg;
    for (int i = 0; i < OPS_PER_THREAD; i++) {
        uint8_t iv[PK_GCM_IV_LEN] = {(uint8_t)i}, ct[16 + PK_GCM_TAG_LEN];
        if (pk_failed(pk_p11_gcm_encrypt(p11, &id, NULL, iv, pk_bytes_of("", 0), pk_bytes_of("0123456789abcdef", 16),
                                         ct)) ||
            pk_failed(pk_p11_gcm_decrypt(p11, &id, NULL, iv, pk_bytes_of("", 0), pk_bytes_of(ct, sizeof(ct)), &pt)) ||
            memcmp(pt.data, "0123456789abcdef", 16) != 0)
            failures++;
    }
    pk_secbuf_free(&pt);
    return (void *)failures;
}

static void test_p11_threads_share_the_pool(void)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) CU_ASSERT_EQUAL(pthread_create(&t[i], NULL, worker, NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        void *ret = NULL;
        pthread_join(t[i], &ret);
        CU_ASSERT_EQUAL((uintptr_t)ret, 0);
    }
}

/* ---- open failures a user can reach, each with its exact message ---- */

static p11kms_rc open_with(const char *conf_text, const char *name)
{
    char path[512];
    p11kms_config *cfg = NULL;
    pk_p11 *p = NULL;
    pk_p11_opts o;
    p11kms_rc rc;
    pk_fixture_write(&fx, name, conf_text, path, sizeof(path));
    rc = p11kms_config_load(path, &cfg);
    if (rc != P11KMS_OK) return rc;
    o = default_opts(cfg);
    rc = pk_p11_open(&o, &p).code;
    pk_p11_close(p);
    p11kms_config_free(cfg);
    return rc;
}

static void test_p11_open_refuses_bad_module_and_uri(void)
{
    char want[600];
    PK_ASSERT_RC(open_with("module = /nonexistent/libpkcs11.so\ntoken = pkcs11:token=p11kms-test\npin = file:user.pin\n",
                           "c1.conf"),
                 P11KMS_ERR_TOKEN, "PKCS#11 module /nonexistent/libpkcs11.so not found or not readable");
    snprintf(want, sizeof(want), "module = %s/c1.conf\ntoken = pkcs11:token=p11kms-test\npin = file:user.pin\n", fx.dir);
    PK_ASSERT_RC(open_with(want, "c2.conf"), P11KMS_ERR_TOKEN, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "is not a loadable PKCS#11 module"));
    PK_ASSERT_RC(open_with("module = no-such-module\ntoken = pkcs11:token=p11kms-test\npin = file:user.pin\n", "c3.conf"),
                 P11KMS_ERR_TOKEN, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "no PKCS#11 module is registered with p11-kit as 'no-such-module'"));
    snprintf(want, sizeof(want), "module = %s\ntoken = token=p11kms-test\npin = file:user.pin\n",
             p11kms_config_get(fx.cfg, "module"));
    /* Values are checked when the file is loaded, naming the line. */
    PK_ASSERT_RC(open_with(want, "c4.conf"), P11KMS_ERR_CONFIG, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "c4.conf:2: token: 'token=p11kms-test' is not a PKCS#11 URI "
                                                       "(expected pkcs11:token=LABEL, RFC 7512)"));
    snprintf(want, sizeof(want), "module = %s\ntoken = pkcs11:token=%%zz\npin = file:user.pin\n",
             p11kms_config_get(fx.cfg, "module"));
    PK_ASSERT_RC(open_with(want, "c5.conf"), P11KMS_ERR_CONFIG, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "malformed token URI 'pkcs11:token=%zz'"));
    snprintf(want, sizeof(want), "module = %s\ntoken = pkcs11:token=nope\npin = file:user.pin\n",
             p11kms_config_get(fx.cfg, "module"));
    PK_ASSERT_RC(open_with(want, "c6.conf"), P11KMS_ERR_TOKEN, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "no token matches pkcs11:token=nope (tokens present: 'p11kms-test'"));
}

static void test_p11_open_refuses_bad_pin(void)
{
    char text[600], pinpath[512];
    const char *module = p11kms_config_get(fx.cfg, "module");

    /*
     * A wrong PIN is tested from the CLI (tests/cli/token.sh): in this process
     * the token is already logged in, and PKCS#11 login state is per
     * application, so C_Login answers CKR_USER_ALREADY_LOGGED_IN.
     */
    pk_fixture_write(&fx, "wrong.pin", "0000\n", pinpath, sizeof(pinpath));
    snprintf(text, sizeof(text), "module = %s\ntoken = pkcs11:token=p11kms-test\npin = file:wrong.pin\n", module);
    chmod(pinpath, 0644);
    PK_ASSERT_RC(open_with(text, "p2.conf"), P11KMS_ERR_CONFIG, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "is accessible by group or others (mode 0644); run: chmod 600"));
    snprintf(text, sizeof(text), "module = %s\ntoken = pkcs11:token=p11kms-test\npin = file:missing.pin\n", module);
    PK_ASSERT_RC(open_with(text, "p3.conf"), P11KMS_ERR_CONFIG, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "missing.pin: No such file or directory"));
    snprintf(text, sizeof(text), "module = %s\ntoken = pkcs11:token=p11kms-test\npin = env:P11KMS_TEST_NO_SUCH_VAR\n",
             module);
    PK_ASSERT_RC(open_with(text, "p4.conf"), P11KMS_ERR_CONFIG,
                 "PIN environment variable P11KMS_TEST_NO_SUCH_VAR is not set");
    snprintf(text, sizeof(text), "module = %s\ntoken = pkcs11:token=p11kms-test\npin = 1234\n", module);
    PK_ASSERT_RC(open_with(text, "p5.conf"), P11KMS_ERR_CONFIG, NULL);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(p11kms_last_error(), "p5.conf:3: pin: must be file:PATH or env:NAME (a literal PIN is not accepted)"));
}

static void test_p11_config_errors_name_the_line(void)
{
    PK_ASSERT_RC(open_with("# comment\nmodule = x\ncolour = blue\n", "k1.conf"), P11KMS_ERR_CONFIG, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "k1.conf:3: unknown key 'colour'"));
    PK_ASSERT_RC(open_with("module = x\n\ntoken pkcs11\n", "k2.conf"), P11KMS_ERR_CONFIG, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "k2.conf:3: expected 'key = value'"));
    PK_ASSERT_RC(open_with("module = x\nmodule = y\n", "k3.conf"), P11KMS_ERR_CONFIG, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "k3.conf:2: 'module' is already set on line 1"));
    PK_ASSERT_RC(open_with("module = x\ntoken = pkcs11:\n", "k4.conf"), P11KMS_ERR_CONFIG, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "k4.conf: 'pin' is not set"));
}

/* A CKR failure's origin is the PKCS#11 call site, not the CK_RV adapter in p11_errors.c. */
static void test_p11_ckr_failure_keeps_call_site_origin(void)
{
    pk_keyid id = make_id("test:origin");
    uint8_t mac[PK_HMAC_LEN];
    pk_result r;

    CU_ASSERT_TRUE_FATAL(pk_ok(pk_p11_generate_key(p11, PK_KEY_AES_CMK, &id, "p11kms:test:origin")));
    pk_error_clear();
    r = pk_p11_hmac(p11, &id, pk_bytes_of("data", 4), mac); /* an AES key cannot HMAC */
    CU_ASSERT_TRUE(pk_failed(r));
    CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "CKR_"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pk_error_origin(), "p11/p11_"));
    CU_ASSERT_PTR_NULL(strstr(pk_error_origin(), "p11_errors.c"));
    /* Annotating and recoding keep it. */
    {
        char before[96];
        snprintf(before, sizeof(before), "%s", pk_error_origin());
        r = pk_recode(pk_annotate(r, "key %s: ", "test:origin"), P11KMS_ERR_INTERNAL);
        CU_ASSERT_STRING_EQUAL(pk_error_origin(), before);
        CU_ASSERT_PTR_NOT_NULL(strstr(p11kms_last_error(), "key test:origin: "));
    }
    PK_IGNORE(pk_p11_destroy_key(p11, &id));
}

int main(void)
{
    CU_pSuite s;
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    s = CU_add_suite("p11", suite_init, suite_clean);
    CU_add_test(s, "test_p11_probe_finds_required_mechanisms", test_p11_probe_finds_required_mechanisms);
    CU_add_test(s, "test_p11_cmk_attributes_are_locked_down", test_p11_cmk_attributes_are_locked_down);
    CU_add_test(s, "test_p11_gcm_round_trip_and_tamper", test_p11_gcm_round_trip_and_tamper);
    CU_add_test(s, "test_p11_hmac_is_keyed", test_p11_hmac_is_keyed);
    CU_add_test(s, "test_p11_data_keys_wrap_unwrap_and_evict", test_p11_data_keys_wrap_unwrap_and_evict);
    CU_add_test(s, "test_p11_missing_key_is_not_found", test_p11_missing_key_is_not_found);
    CU_add_test(s, "test_p11_destroy_removes_object", test_p11_destroy_removes_object);
    CU_add_test(s, "test_p11_list_objects_by_label_prefix", test_p11_list_objects_by_label_prefix);
    CU_add_test(s, "test_p11_reconnects_after_sessions_drop", test_p11_reconnects_after_sessions_drop);
    CU_add_test(s, "test_p11_child_after_fork_reinitialises", test_p11_child_after_fork_reinitialises);
    CU_add_test(s, "test_p11_threads_share_the_pool", test_p11_threads_share_the_pool);
    CU_add_test(s, "test_p11_config_errors_name_the_line", test_p11_config_errors_name_the_line);
    CU_add_test(s, "test_p11_open_refuses_bad_module_and_uri", test_p11_open_refuses_bad_module_and_uri);
    CU_add_test(s, "test_p11_open_refuses_bad_pin", test_p11_open_refuses_bad_pin);
    CU_add_test(s, "test_p11_ckr_failure_keeps_call_site_origin", test_p11_ckr_failure_keeps_call_site_origin);
    return pk_run_suites();
}
