/*
 * TLS for p11kmsd's https:// listeners: TLS 1.2 or later, optional client
 * certificates. The daemon's only OpenSSL user (the library's crypto stays
 * in src/crypto; tests/cli/layering.sh allows exactly this file).
 */
#include "config.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon.h"

static void fill_tls_peer(SSL *ssl, d_peer *p)
{
    X509 *x = SSL_get1_peer_certificate(ssl);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (x == NULL) return;
    if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1)
        for (unsigned i = 0; i < mdlen && i < 32; i++) snprintf(p->cert_fp + 2 * i, 3, "%02x", md[i]);
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, p->cert_cn, sizeof(p->cert_cn));
    X509_NAME_oneline(X509_get_subject_name(x), p->cert_subject, sizeof(p->cert_subject));
    X509_free(x);
}


/* The client certificate is known after the handshake: read it when the first request is dispatched. */
void d_tls_peer_info(struct bufferevent *bev, d_peer *p)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl != NULL && p->cert_fp[0] == '\0') fill_tls_peer(ssl, p);
}

static const char *cfg_path(const p11kms_config *cfg, const char *key)
{
    const char *k, *v;
    for (size_t i = 0; p11kms_config_entry(cfg, i, &k, &v); i++)
        if (strcmp(k, key) == 0) return v;
    return NULL;
}

static void log_ssl(const char *what, const char *path)
{
    char err[256];
    ERR_error_string_n(ERR_get_error(), err, sizeof(err));
    d_log("%s %s: %s", what, path, err);
}

SSL_CTX *d_tls_context(const p11kms_config *cfg)
{
    const char *cert = cfg_path(cfg, "tls_cert"), *key = cfg_path(cfg, "tls_key");
    const char *ca = cfg_path(cfg, "tls_client_ca");
    SSL_CTX *ctx;
    if (cert == NULL || key == NULL) {
        d_log("an https:// listener needs tls_cert and tls_key");
        return NULL;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        log_ssl("tls_cert", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        log_ssl("tls_key", key);
        goto fail;
    }
    if (ca != NULL) {
        /* Client certificates are optional: without one the request must carry SigV4. */
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
            log_ssl("tls_client_ca", ca);
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void d_tls_context_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

struct bufferevent *d_tls_bufferevent(struct event_base *base, int fd, SSL_CTX *ctx)
{
    SSL *ssl = SSL_new(ctx);
    struct bufferevent *bev;
    if (ssl == NULL) return NULL;
    bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) SSL_free(ssl);
    return bev;
}
