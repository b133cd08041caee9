/*
 * HTTP/1.1 server over bufferevents. Only what the AWS SDKs send is
 * accepted: a request line, at most D_MAX_HEADERS headers within
 * max_header_bytes, a Content-Length body of at most 1 MiB (no chunked
 * encoding), keep-alive and pipelining one request at a time. Each request
 * must arrive within read_timeout_s; an idle connection closes after
 * idle_timeout_s; beyond max_connections new connections are closed at once.
 *
 * Hand-off per request (docs/DAEMON.md, "Threads"): the loop reads and
 * parses, a worker runs the operation. On a plain socket with nothing else
 * queued the worker writes the answer itself and wakes the loop only when
 * the loop has something to do for that connection now (more bytes came in,
 * it closes, the server drains); otherwise the loop picks the finished job
 * up when it next wakes, at the latest after SWEEP_MS. The connection's
 * mutex covers the write and the hand-back, so bytes of the next request
 * read by the loop always find the job back or leave read_waiting for the
 * worker to see: no answer waits for the sweep. Reading stays on
 * while a request runs (bounded to max_header_bytes), so a keep-alive
 * client's next request costs no epoll_ctl.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "daemon/daemon.h"

enum conn_state { C_READ, C_BUSY, C_CLOSE_AFTER_WRITE };

typedef struct d_conn {
    d_server *srv;
    struct bufferevent *bev;
    struct event *timer;
    d_peer peer;
    enum conn_state state;
    bool have_head, in_request, closing, sent_continue;
    bool out_full; /* answers not yet taken by the client passed D_MAX_OUTPUT: reading waits for write_cb */
    pthread_mutex_t mu; /* the hand-back of a job: a worker's direct write, then read_waiting / job_back */
    bool read_waiting;  /* bytes or EOF arrived while a worker had the request */
    bool job_back;      /* the worker has put the job on the reply list */
    d_request req;
    size_t need; /* body bytes */
    struct d_conn *prev, *next;
} d_conn;

struct d_server {
    struct event_base *base;
    d_settings s;
    d_principals principals;
    d_pool *pool;
    d_conn *conns;
    size_t nconns, busy;
    bool draining;
    struct event *reply_ev;
    struct event *sweep;
    pthread_mutex_t reply_mu;
    d_job *replies;
};

#define SWEEP_MS 10

static void conn_free(d_conn *c);
static void conn_process(d_conn *c);

int64_t d_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void request_clear(d_request *r)
{
    free(r->head);
    d_wipe_free(r->body, r->body_len);
    memset(r, 0, sizeof(*r));
}

void d_job_free(d_job *job)
{
    if (job == NULL) return;
    request_clear(&job->req);
    d_wipe_free(job->resp.body, job->resp.body_len);
    free(job);
}

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void wipe_cleanup(const void *data, size_t len, void *extra)
{
    (void)extra;
    d_wipe_free((void *)data, len);
}

static void arm_timer(d_conn *c, unsigned long seconds)
{
    struct timeval tv = {(time_t)seconds, 0};
    evtimer_add(c->timer, &tv);
}

#define HEAD_MAX 320

/* The status line and headers (the same bytes each time: a worker's partial write is finished from them). */
static size_t format_head(char out[HEAD_MAX], const d_response *resp, const char *request_id, bool keep_alive)
{
    int n = snprintf(out, HEAD_MAX,
                     "HTTP/1.1 %d %s\r\nx-amzn-RequestId: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: %s\r\n\r\n",
                     resp->status, reason(resp->status), request_id,
                     resp->content_type ? resp->content_type : "application/x-amz-json-1.1", resp->body_len,
                     keep_alive ? "keep-alive" : "close");
    return n < 0 ? 0 : (size_t)n < HEAD_MAX ? (size_t)n : HEAD_MAX - 1;
}

/*
 * Queue the response minus the first skip bytes a worker already wrote; it
 * owns resp->body from here on. Head and body go out as one chunk: over TLS
 * that is one record and one send instead of two. False: out of memory,
 * nothing queued; the caller closes the connection.
 */
static bool write_response(d_conn *c, d_response *resp, const char *request_id, bool keep_alive, size_t skip)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char head[HEAD_MAX];
    size_t hl = format_head(head, resp, request_id, keep_alive), total = hl + resp->body_len;
    uint8_t *all = skip < total ? malloc(total - skip) : NULL;
    bool ok = all != NULL || skip >= total;
    if (all != NULL) {
        size_t body_skip = skip > hl ? skip - hl : 0;
        if (skip < hl) memcpy(all, head + skip, hl - skip);
        /* A refusal may have no body (NULL): NULL + 0 and memcpy from NULL are undefined. */
        if (resp->body_len > body_skip)
            memcpy(all + (skip < hl ? hl - skip : 0), resp->body + body_skip, resp->body_len - body_skip);
        if (evbuffer_add_reference(out, all, total - skip, wipe_cleanup, NULL) != 0) {
            d_wipe_free(all, total - skip);
            ok = false;
        }
    }
    d_wipe_free(resp->body, resp->body_len);
    resp->body = NULL;
    resp->body_len = 0;
    return ok;
}

/*
 * Ready for the next request (true), closing (false: c may be freed), or
 * waiting (false) because the client has not taken D_MAX_OUTPUT of answers:
 * a client that pipelines and never reads would otherwise make the daemon
 * buffer every answer (GenerateRandom answers 14x its request). write_cb
 * resumes once the output is written; idle_timeout_s closes it meanwhile.
 */
static bool next_request(d_conn *c, bool keep_alive)
{
    if (!keep_alive || c->srv->draining) {
        c->state = C_CLOSE_AFTER_WRITE;
        bufferevent_disable(c->bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) conn_free(c);
        return false;
    }
    c->state = C_READ;
    c->have_head = c->in_request = c->sent_continue = false;
    request_clear(&c->req);
    bufferevent_setwatermark(c->bev, EV_READ, 0, D_MAX_BODY + c->srv->s.max_header_bytes);
    arm_timer(c, c->srv->s.idle_timeout_s);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > D_MAX_OUTPUT) {
        c->out_full = true;
        bufferevent_disable(c->bev, EV_READ);
        return false;
    }
    return true;
}

static void after_write(d_conn *c, bool keep_alive)
{
    if (next_request(c, keep_alive)) conn_process(c); /* a pipelined request may already be buffered */
}

/* A refusal decided on the loop thread (framing errors): answer and close. */
static void refuse(d_conn *c, int status, const char *type, const char *msg)
{
    d_response resp = {0};
    char rid[D_REQID_LEN + 1];
    d_request_id(rid);
    d_respond_error(&resp, status, type, "%s", msg);
    d_log("%s - %s %d %s (%s)", rid, c->peer.addr, status, type, msg);
    (void)write_response(c, &resp, rid, false, 0); /* closing either way */
    after_write(c, false);
}

static bool token_eq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

/* Split the head into the request line and headers (in place). 0 or an HTTP status. */
static int parse_head(d_conn *c, const char **why)
{
    d_request *r = &c->req;
    char *line = r->head, *next, *sp1, *sp2;
    bool http10, have_len = false;
    size_t clen = 0;

    next = strstr(line, "\r\n");
    *next = '\0';
    next += 2;
    sp1 = strchr(line, ' ');
    sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    *why = "malformed request line";
    if (sp1 == NULL || sp2 == NULL || (size_t)(sp1 - line) >= sizeof(r->method) ||
        (size_t)(sp2 - sp1 - 1) >= sizeof(r->path) || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return 400;
    memcpy(r->method, line, (size_t)(sp1 - line));
    memcpy(r->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    http10 = strcmp(sp2 + 1, "HTTP/1.0") == 0;
    r->keep_alive = !http10;
    for (line = next; *line != '\0'; line = next) {
        char *colon, *v, *e;
        next = strstr(line, "\r\n");
        *next = '\0';
        next += 2;
        *why = "malformed header line";
        colon = strchr(line, ':');
        if (colon == NULL || colon == line || isspace((unsigned char)line[0])) return 400;
        *colon = '\0';
        for (e = line; *e; e++)
            if (!isgraph((unsigned char)*e)) return 400;
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++) {}
        for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--) *(e - 1) = '\0';
        *why = "control character in a header value";
        for (e = v; *e; e++)
            if (iscntrl((unsigned char)*e) && *e != '\t') return 400;
        *why = "too many headers";
        if (r->nheaders == D_MAX_HEADERS) return 431;
        r->headers[r->nheaders].name = line;
        r->headers[r->nheaders++].value = v;
        if (token_eq(line, "Content-Length")) {
            char *end = NULL;
            unsigned long long n = strtoull(v, &end, 10);
            *why = "malformed Content-Length";
            if (!isdigit((unsigned char)v[0]) || *end != '\0' || (have_len && n != clen)) return 400;
            clen = (size_t)(n > D_MAX_BODY ? D_MAX_BODY + 1 : n);
            have_len = true;
        } else if (token_eq(line, "Transfer-Encoding")) {
            *why = "Transfer-Encoding is not supported: send Content-Length";
            return 411;
        } else if (token_eq(line, "Connection")) {
            if (strcasestr(v, "close")) r->keep_alive = false;
            if (http10 && strcasestr(v, "keep-alive")) r->keep_alive = true;
        }
    }
    *why = "request body is larger than 1 MiB";
    if (clen > D_MAX_BODY) return 413;
    *why = "POST needs a Content-Length";
    if (!have_len && strcmp(r->method, "POST") == 0) return 411;
    c->need = clen;
    return 0;
}

static const char *header(const d_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (token_eq(r->headers[i].name, name)) return r->headers[i].value;
    return NULL;
}

/* The principal the transport proves, looked up on the loop thread (SIGHUP swaps the table here). */
static void transport_identity(d_conn *c, d_job *job)
{
    const d_principals *p = &c->srv->principals;
    const char *arn = NULL;
    char num[24];
    if (c->peer.is_unix && c->peer.has_cred) {
        snprintf(num, sizeof(num), "%u", (unsigned)c->peer.uid);
        arn = d_principal_lookup(p, 'u', num);
        if (arn == NULL) {
            snprintf(num, sizeof(num), "%u", (unsigned)c->peer.gid);
            arn = d_principal_lookup(p, 'g', num);
        }
        job->auth = P11KMS_AUTH_PEER_UID;
        snprintf(job->auth_id, sizeof(job->auth_id), "uid=%u gid=%u", (unsigned)c->peer.uid, (unsigned)c->peer.gid);
    } else if (c->peer.is_tls && c->peer.cert_fp[0] != '\0') {
        arn = d_principal_lookup(p, 'c', c->peer.cert_fp);
        if (arn == NULL && c->peer.cert_cn[0] != '\0') arn = d_principal_lookup(p, 'c', c->peer.cert_cn);
        if (arn != NULL) {
            job->auth = P11KMS_AUTH_CERTIFICATE;
            snprintf(job->auth_id, sizeof(job->auth_id), "%.256s", c->peer.cert_subject[0] ? c->peer.cert_subject
                                                                                        : c->peer.cert_fp);
        }
    }
    if (arn != NULL) snprintf(job->principal, sizeof(job->principal), "%s", arn);
}

static void dispatch(d_conn *c)
{
    d_server *srv = c->srv;
    d_job *job = calloc(1, sizeof(*job));
    if (job == NULL) {
        refuse(c, 503, "KMSInternalException", "out of memory");
        return;
    }
    job->conn = c;
    job->req = c->req;
    memset(&c->req, 0, sizeof(c->req));
    job->peer = c->peer;
    job->start_ms = mono_ms();
    d_request_id(job->request_id);
    if (c->peer.is_tls) d_tls_peer_info(c->bev, &c->peer);
    job->peer = c->peer;
    transport_identity(c, job);
    /* Nothing else writes to the socket while the job runs: the worker may answer directly. */
    job->fd = (int)bufferevent_getfd(c->bev);
    job->direct = !c->peer.is_tls && job->fd >= 0 && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
    c->state = C_BUSY;
    /* A pipelined request already buffered needs the loop as soon as the answer is out. */
    pthread_mutex_lock(&c->mu); /* the previous job's worker may not have released it yet */
    c->read_waiting = evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;
    c->job_back = false;
    pthread_mutex_unlock(&c->mu);
    bufferevent_setwatermark(c->bev, EV_READ, 0, srv->s.max_header_bytes);
    evtimer_del(c->timer);
    srv->busy++;
    if (!evtimer_pending(srv->sweep, NULL)) {
        struct timeval tv = {0, SWEEP_MS * 1000};
        evtimer_add(srv->sweep, &tv);
    }
    d_pool_submit(srv->pool, job);
}

/*
 * GET /ping: liveness answered by the loop itself, no token, no worker,
 * no caller. It is the protocol floor bench/p11kmsd-bench measures: the
 * same socket, parser, request id and log line as any request.
 */
static bool ping(d_conn *c)
{
    d_response resp = {200, "application/json", NULL, 2, NULL};
    char rid[D_REQID_LEN + 1];
    int64_t t0 = mono_ms();
    bool keep_alive = c->req.keep_alive;
    if ((resp.body = malloc(2)) == NULL) {
        refuse(c, 503, "KMSInternalException", "out of memory");
        return false;
    }
    memcpy(resp.body, "{}", 2);
    d_request_id(rid);
    d_log("%s %s - ping 200 %lldms", rid, c->peer.addr, (long long)(mono_ms() - t0));
    return next_request(c, write_response(c, &resp, rid, keep_alive, 0) && keep_alive);
}

/* One step; true when a request was answered here and the next may be buffered already. */
static bool conn_step(d_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in);
    const char *why = NULL;
    int status;

    if (c->state != C_READ || c->closing) return false;
    if (len > 0 && !c->in_request) {
        c->in_request = true;
        arm_timer(c, c->srv->s.read_timeout_s); /* the whole request must arrive in time */
    }
    if (!c->have_head) {
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        size_t head_len;
        if (end.pos < 0) {
            if (len > c->srv->s.max_header_bytes)
                refuse(c, 431, "ValidationException", "request headers are larger than max_header_bytes");
            return false;
        }
        head_len = (size_t)end.pos + 4;
        if (head_len > c->srv->s.max_header_bytes) {
            refuse(c, 431, "ValidationException", "request headers are larger than max_header_bytes");
            return false;
        }
        c->req.head = malloc(head_len - 1);
        if (c->req.head == NULL) {
            refuse(c, 503, "KMSInternalException", "out of memory");
            return false;
        }
        evbuffer_remove(in, c->req.head, head_len - 2); /* keep the last CRLF as the end marker */
        evbuffer_drain(in, 2);
        c->req.head[head_len - 2] = '\0';
        /* The parser works on C strings: a NUL byte would hide the line ends. */
        if (memchr(c->req.head, '\0', head_len - 2) != NULL) {
            refuse(c, 400, "SerializationException", "NUL byte in the request head");
            return false;
        }
        status = parse_head(c, &why);
        if (status != 0) {
            refuse(c, status, status == 413 || status == 431 ? "ValidationException" : "SerializationException", why);
            return false;
        }
        c->have_head = true;
        len = evbuffer_get_length(in);
        if (len < c->need && !c->sent_continue) {
            const char *expect = header(&c->req, "Expect");
            if (expect != NULL && strcasecmp(expect, "100-continue") == 0)
                evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
            c->sent_continue = true;
        }
    }
    if (len < c->need) return false;
    c->req.body = malloc(c->need + 1);
    if (c->req.body == NULL) {
        refuse(c, 503, "KMSInternalException", "out of memory");
        return false;
    }
    evbuffer_remove(in, c->req.body, c->need);
    c->req.body[c->need] = '\0'; /* the JSON reader gets a C string too */
    c->req.body_len = c->need;
    if (strcmp(c->req.method, "GET") == 0 && strcmp(c->req.path, "/ping") == 0) return ping(c);
    dispatch(c);
    return false;
}

/* A loop, not recursion: a client may have pipelined many pings. */
static void conn_process(d_conn *c)
{
    while (conn_step(c)) {}
}

/* Bytes or EOF while a worker has the request: the loop is needed once the job is back. */
static void busy_event(d_conn *c)
{
    bool back;
    pthread_mutex_lock(&c->mu);
    c->read_waiting = true;
    back = c->job_back;
    pthread_mutex_unlock(&c->mu);
    if (back) event_active(c->srv->reply_ev, EV_READ, 0); /* on the loop thread: no wake-up */
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    d_conn *c = arg;
    (void)bev;
    if (c->state == C_BUSY) {
        busy_event(c);
        return;
    }
    conn_process(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    d_conn *c = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0) return;
    if (c->state == C_CLOSE_AFTER_WRITE) {
        conn_free(c);
    } else if (c->out_full) {
        c->out_full = false;
        bufferevent_enable(bev, EV_READ);
        conn_process(c);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    d_conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) return;
    if (c->state == C_BUSY) { /* the worker still owns the job: free when it answers */
        c->closing = true;
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        busy_event(c);
        return;
    }
    conn_free(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    d_conn *c = arg;
    (void)fd, (void)what;
    if (c->state == C_BUSY) return;
    if (c->in_request && c->state == C_READ) {
        d_log("- %s closed: request not received within read_timeout_s", c->peer.addr);
        refuse(c, 408, "RequestTimeoutException", "request not received within read_timeout_s");
        return;
    }
    conn_free(c);
}

static void maybe_exit(d_server *srv)
{
    if (srv->draining && srv->busy == 0 && srv->nconns == 0) event_base_loopexit(srv->base, NULL);
}

static void conn_free(d_conn *c)
{
    d_server *srv = c->srv;
    if (c->prev) c->prev->next = c->next;
    else srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->bev) bufferevent_free(c->bev);
    if (c->timer) event_free(c->timer);
    request_clear(&c->req);
    /* A worker's last touch is its unlock: once we hold the mutex it is done with c. */
    pthread_mutex_lock(&c->mu);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_destroy(&c->mu);
    free(c);
    srv->nconns--;
    maybe_exit(srv);
}

void d_server_accept(d_server *srv, int fd, const d_peer *peer, SSL_CTX *tls)
{
    d_conn *c;
    if (srv->draining || srv->nconns >= srv->s.max_connections) {
        d_log("- %s refused: %s", peer->addr, srv->draining ? "shutting down" : "max_connections reached");
        close(fd);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->srv = srv;
    c->peer = *peer;
    pthread_mutex_init(&c->mu, NULL);
    evutil_make_socket_nonblocking(fd);
    if (tls != NULL) {
        c->bev = d_tls_bufferevent(srv->base, fd, tls);
    } else {
        c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    c->timer = evtimer_new(srv->base, timer_cb, c);
    if (c->bev == NULL || c->timer == NULL) {
        if (c->bev == NULL) close(fd);
        if (c->bev) bufferevent_free(c->bev);
        if (c->timer) event_free(c->timer);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return;
    }
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, D_MAX_BODY + srv->s.max_header_bytes);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    arm_timer(c, srv->s.idle_timeout_s);
}

static void log_job(const d_job *job)
{
    const char *who = job->principal[0] ? job->principal : "-";
    d_log("%s %s %s %s %d%s%s %lldms", job->request_id, job->peer.addr, who, job->op[0] ? job->op : "-",
          job->resp.status, job->resp.error_type ? " " : "", job->resp.error_type ? job->resp.error_type : "",
          (long long)(job->end_ms - job->start_ms));
}

static void replies_cb(evutil_socket_t fd, short what, void *arg)
{
    d_server *srv = arg;
    d_job *list;
    (void)fd, (void)what;
    pthread_mutex_lock(&srv->reply_mu);
    list = srv->replies;
    srv->replies = NULL;
    pthread_mutex_unlock(&srv->reply_mu);
    while (list != NULL) {
        d_job *job = list;
        d_conn *c = job->conn;
        list = job->next;
        srv->busy--;
        log_job(job);
        if (c->closing) {
            d_job_free(job);
            c->state = C_READ;
            conn_free(c);
            continue;
        }
        after_write(c, write_response(c, &job->resp, job->request_id, job->req.keep_alive, job->sent) &&
                           job->req.keep_alive);
        d_job_free(job);
    }
    maybe_exit(srv);
}

/* Worker thread: write the whole answer to a plain socket without blocking; job->sent says how far it got. */
static bool send_direct(d_job *job)
{
    char head[HEAD_MAX];
    size_t hl = format_head(head, &job->resp, job->request_id, job->req.keep_alive);
    size_t total = hl + job->resp.body_len;
    while (job->sent < total) {
        struct iovec iov[2];
        struct msghdr m = {0};
        ssize_t w;
        int n = 0;
        if (job->sent < hl) iov[n++] = (struct iovec){head + job->sent, hl - job->sent};
        if (job->resp.body_len > 0) {
            size_t off = job->sent > hl ? job->sent - hl : 0;
            iov[n++] = (struct iovec){job->resp.body + off, job->resp.body_len - off};
        }
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)n;
        w = sendmsg(job->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false; /* full or failed: the loop queues the rest and sees the error */
        job->sent += (size_t)w;
    }
    return true;
}

/* Worker thread. c is not touched after its mutex is released: the loop may free it then. */
void d_server_reply(d_job *job)
{
    d_conn *c = job->conn;
    d_server *srv = c->srv;
    bool wake, done;
    job->end_ms = mono_ms(); /* the log's time is the answer's, not the loop's later pick-up */
    pthread_mutex_lock(&c->mu);
    done = job->direct && send_direct(job);
    wake = !done || !job->req.keep_alive || c->read_waiting || __atomic_load_n(&srv->draining, __ATOMIC_ACQUIRE);
    c->job_back = true;
    pthread_mutex_lock(&srv->reply_mu);
    job->next = srv->replies;
    srv->replies = job;
    pthread_mutex_unlock(&srv->reply_mu);
    pthread_mutex_unlock(&c->mu);
    if (wake) event_active(srv->reply_ev, EV_READ, 0);
}

/* Picks up answers no one woke the loop for, while any request runs. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    d_server *srv = arg;
    struct timeval tv = {0, SWEEP_MS * 1000};
    replies_cb(fd, what, srv);
    if (srv->busy > 0) evtimer_add(srv->sweep, &tv);
}

d_server *d_server_new(struct event_base *base, const d_settings *s)
{
    d_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) return NULL;
    srv->base = base;
    srv->s = *s;
    pthread_mutex_init(&srv->reply_mu, NULL);
    srv->reply_ev = event_new(base, -1, EV_PERSIST | EV_READ, replies_cb, srv);
    srv->sweep = evtimer_new(base, sweep_cb, srv);
    if (srv->reply_ev == NULL || srv->sweep == NULL) {
        if (srv->reply_ev) event_free(srv->reply_ev);
        if (srv->sweep) event_free(srv->sweep);
        free(srv);
        return NULL;
    }
    return srv;
}

void d_server_set_principals(d_server *srv, d_principals *p)
{
    d_principals_free(&srv->principals);
    srv->principals = *p;
    memset(p, 0, sizeof(*p));
}

const d_principals *d_server_principals(const d_server *srv)
{
    return &srv->principals;
}

void d_server_set_pool(d_server *srv, d_pool *pool)
{
    srv->pool = pool;
}

/* A request the client already sent but the loop has not read yet is in flight too. */
static bool bytes_pending(d_conn *c)
{
    char b;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    return evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 ||
           (fd >= 0 && recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0);
}

void d_server_drain(d_server *srv)
{
    d_conn *c, *next;
    __atomic_store_n(&srv->draining, true, __ATOMIC_RELEASE);
    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == C_READ && !c->in_request && !bytes_pending(c)) conn_free(c);
    }
    maybe_exit(srv);
}

size_t d_server_busy(const d_server *srv)
{
    return srv->busy;
}

void d_server_free(d_server *srv)
{
    if (srv == NULL) return;
    while (srv->conns != NULL) conn_free(srv->conns);
    d_principals_free(&srv->principals);
    event_free(srv->reply_ev);
    event_free(srv->sweep);
    pthread_mutex_destroy(&srv->reply_mu);
    free(srv);
}
