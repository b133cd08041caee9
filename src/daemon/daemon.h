/*
 * p11kmsd: the AWS KMS JSON 1.1 front end of libp11kms (docs/DAEMON.md).
 * One event-loop thread does all socket I/O (libevent bufferevents, plain
 * or OpenSSL); a bounded pool of worker threads runs the library calls, so
 * a slow PKCS#11 call never stalls another connection's I/O.
 */
#ifndef PK_DAEMON_DAEMON_H
#define PK_DAEMON_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "p11kms/p11kms.h"

struct event_base;
struct bufferevent;
struct event;
struct evconnlistener;
typedef struct ssl_ctx_st SSL_CTX;

#define D_MAX_BODY (1024 * 1024) /* the whole request body */
#define D_MAX_OUTPUT (1024 * 1024) /* answers queued for a client that does not read */
#define D_MAX_HEADERS 64
#define D_REQID_LEN 36

/* Settings read once at start (principals are re-read on SIGHUP). */
typedef struct d_settings {
    unsigned long workers, max_connections, max_header_bytes, idle_timeout_s, read_timeout_s;
    unsigned long rate_limit, rate_burst;
} d_settings;

/* principal.uid.N / principal.gid.N / principal.cert.X mappings. */
typedef struct d_principal {
    char kind;     /* 'u', 'g', 'c' */
    char *subject; /* the number or the certificate fingerprint / CN */
    char *arn;
} d_principal;

typedef struct d_principals {
    d_principal *v;
    size_t n;
} d_principals;

/* How a connection's peer is known before any request is read. */
typedef struct d_peer {
    bool is_unix, is_tls;
    bool has_cred;
    uid_t uid;
    gid_t gid;
    char addr[64];      /* "unix" or the IP address */
    char cert_fp[65];   /* client certificate SHA-256, hex */
    char cert_cn[128];  /* client certificate common name */
    char cert_subject[256];
} d_peer;

/* One parsed request, owned by a job while a worker runs it. */
typedef struct d_request {
    char method[8];
    char path[256];
    char *head;                 /* the header block, NUL-split in place */
    p11kms_http_header headers[D_MAX_HEADERS];
    size_t nheaders;
    uint8_t *body;              /* wiped on free: it may carry base64 plaintext */
    size_t body_len;
    bool keep_alive;
} d_request;

/* A response built by a worker and written by the loop thread. */
typedef struct d_response {
    int status;
    const char *content_type;
    uint8_t *body; /* wiped on free */
    size_t body_len;
    const char *error_type; /* for the log line, or NULL */
} d_response;

struct d_conn;

typedef struct d_job {
    struct d_conn *conn;
    d_request req;
    d_response resp;
    d_peer peer;
    char request_id[D_REQID_LEN + 1];
    char op[48];
    char principal[2049]; /* ARN (at most 2048, checked at load) from the peer or certificate; SigV4: the access key's principal */
    char auth_id[288];
    p11kms_auth_method auth;
    int64_t start_ms, end_ms; /* monotonic: read by the loop, answered by the worker */
    int fd;      /* direct: a worker writes the answer to this plain socket */
    bool direct; /* set by the loop: plain socket, nothing else queued to write */
    size_t sent; /* bytes of the answer a worker wrote; the loop queues the rest */
    struct d_job *next;
} d_job;

typedef struct d_server d_server;

/* ---- main.c ---- */
void d_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int64_t d_now_ms(void);

/* ---- config.c ---- */
int d_settings_load(const p11kms_config *cfg, d_settings *s);
int d_principals_load(const p11kms_config *cfg, d_principals *p);
void d_principals_free(d_principals *p);
const char *d_principal_lookup(const d_principals *p, char kind, const char *subject);

/* ---- pool.c ---- */
typedef struct d_pool d_pool;
typedef void (*d_pool_fn)(d_job *job, void *arg);
d_pool *d_pool_new(unsigned n, d_pool_fn fn, void *arg);
void d_pool_submit(d_pool *p, d_job *job);
void d_pool_free(d_pool *p); /* runs queued jobs, then joins */

/* ---- http.c ---- */
d_server *d_server_new(struct event_base *base, const d_settings *s);
void d_server_free(d_server *srv); /* after the pool: no job may still point at it */
void d_server_set_principals(d_server *srv, d_principals *p); /* takes ownership */
const d_principals *d_server_principals(const d_server *srv);
void d_server_set_pool(d_server *srv, d_pool *pool);
void d_server_accept(d_server *srv, int fd, const d_peer *peer, SSL_CTX *tls);
void d_server_reply(d_job *job); /* from any thread: hands the job back to the loop */
void d_server_drain(d_server *srv); /* stop reading new requests, close idle connections */
size_t d_server_busy(const d_server *srv);
void d_job_free(d_job *job);

/* ---- listen.c ---- */
typedef struct d_listeners d_listeners;
d_listeners *d_listeners_open(struct event_base *base, const p11kms_config *cfg, d_server *srv);
void d_listeners_free(d_listeners *l);

/* ---- tls.c (the daemon's only OpenSSL user: TLS for its own listeners) ---- */
SSL_CTX *d_tls_context(const p11kms_config *cfg);
void d_tls_context_free(SSL_CTX *ctx);
struct bufferevent *d_tls_bufferevent(struct event_base *base, int fd, SSL_CTX *ctx);
void d_tls_peer_info(struct bufferevent *bev, d_peer *p);

/* ---- kms.c ---- */
typedef struct d_kms d_kms;
d_kms *d_kms_new(p11kms *h, const d_settings *s);
void d_kms_free(d_kms *k);
void d_kms_run(d_job *job, void *kms);   /* pool function */
void d_respond_error(d_response *r, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- codec.c ---- */
char *d_b64_encode(const uint8_t *in, size_t n);
/* Strict RFC 4648 with padding; NULL on malformed input. *out_len set. */
uint8_t *d_b64_decode(const char *in, size_t len, size_t *out_len);
void d_wipe_free(void *p, size_t n);
void d_request_id(char out[D_REQID_LEN + 1]);

#endif
