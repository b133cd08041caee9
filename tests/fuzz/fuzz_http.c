/*
 * The daemon's HTTP/1.1 request reader (src/daemon/http.c), compiled into
 * this target unchanged: each input is written into one end of a Unix
 * socket pair whose other end the server accepted, and the event loop runs
 * until it has read everything. A request that frames correctly is
 * answered at once by a stub worker pool (an empty 200), so keep-alive and
 * pipelined requests go through the same state machine as in p11kmsd.
 * fuzz-sources: src/daemon/codec.c
 * fuzz-libs: -levent
 */
#include "config.h"

#include "fuzz/fuzz.h"

#include "daemon/http.c"

#define LOOP_ROUNDS 64

static struct event_base *base;
static d_server *srv;
static size_t dispatched;

/* ---- what http.c needs from the rest of p11kmsd ---- */

void d_log(const char *fmt, ...)
{
    (void)fmt;
}

void d_pool_submit(d_pool *p, d_job *job)
{
    (void)p;
    /* The parser's promises to the workers: a C-string body of the declared length, a bounded method and path. */
    if (job->req.body == NULL || job->req.body[job->req.body_len] != '\0' || job->req.body_len > D_MAX_BODY ||
        strlen(job->req.method) >= sizeof(job->req.method) || strlen(job->req.path) >= sizeof(job->req.path))
        abort();
    for (size_t i = 0; i < job->req.nheaders; i++)
        if (job->req.headers[i].name == NULL || job->req.headers[i].value == NULL) abort();
    dispatched++;
    job->resp.status = 200;
    d_server_reply(job);
}

void d_respond_error(d_response *r, int status, const char *type, const char *fmt, ...)
{
    (void)fmt;
    r->status = status;
    r->error_type = type;
}

struct bufferevent *d_tls_bufferevent(struct event_base *b, int fd, SSL_CTX *ctx)
{
    (void)b, (void)fd, (void)ctx;
    abort(); /* no TLS here */
}

void d_tls_peer_info(struct bufferevent *bev, d_peer *p)
{
    (void)bev, (void)p;
}

const char *d_principal_lookup(const d_principals *p, char kind, const char *subject)
{
    (void)p, (void)kind, (void)subject;
    return "arn:aws:iam::111122223333:role/fuzz";
}

void d_principals_free(d_principals *p)
{
    (void)p;
}

/* ---- the harness ---- */

static void setup(void)
{
    d_settings s = {.workers = 1, .max_connections = 4, .max_header_bytes = 16384, .idle_timeout_s = 60,
                    .read_timeout_s = 60};
    base = event_base_new();
    srv = base != NULL ? d_server_new(base, &s) : NULL;
    if (srv == NULL) abort();
}

/* Read and drop what the server wrote, so it never blocks on a full socket. */
static void drain(int fd)
{
    char buf[4096];
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    d_peer peer = {.is_unix = true, .has_cred = true, .uid = 1000, .gid = 1000};
    int fds[2];
    size_t off = 0;

    if (size > 65536) return 0; /* stays within the socket buffers */
    if (base == NULL) setup();
    snprintf(peer.addr, sizeof(peer.addr), "unix");
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) abort();
    d_server_accept(srv, fds[0], &peer, NULL);
    for (int round = 0; round < LOOP_ROUNDS && srv->conns != NULL; round++) {
        /* Arrive in pieces: the reader must cope with a head split anywhere. */
        size_t piece = size - off < 1024 ? size - off : 1024;
        if (piece > 0) {
            ssize_t w = send(fds[1], data + off, piece, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) off += (size_t)w;
        } else {
            shutdown(fds[1], SHUT_WR);
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
        drain(fds[1]);
    }
    /* Every dispatched request is answered before its connection goes. */
    for (int round = 0; round < LOOP_ROUNDS && srv->busy > 0; round++) event_base_loop(base, EVLOOP_NONBLOCK);
    if (srv->busy != 0) abort();
    while (srv->conns != NULL) conn_free(srv->conns);
    close(fds[1]);
    return 0;
}
