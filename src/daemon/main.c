/*
 * p11kmsd --config FILE: serve AWS KMS JSON 1.1 from libp11kms in the
 * foreground, one log line per request on stderr (never a secret,
 * plaintext, PIN or Authorization header). SIGHUP re-reads the principal.*
 * mappings; SIGTERM/SIGINT stop accepting, finish in-flight requests and
 * close the library handle, which seals the audit trail.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon.h"

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static bool has_connect(const p11kms_config *cfg)
{
    const char *k, *v;
    for (size_t i = 0; p11kms_config_entry(cfg, i, &k, &v); i++)
        if (strcmp(k, "connect") == 0) return true;
    return false;
}

/*
 * One line, one write(2): stderr is unbuffered, so fprintf would make a
 * system call per fragment (three or more per request). A single write of
 * at most PIPE_BUF bytes is not interleaved with other threads' lines.
 */
void d_log(const char *fmt, ...)
{
    char stack[1024], *line = stack;
    time_t now = time(NULL);
    struct tm tm;
    va_list ap;
    int head, n;
    gmtime_r(&now, &tm);
    head = (int)strftime(stack, sizeof(stack), "p11kmsd %Y-%m-%dT%H:%M:%SZ ", &tm);
    va_start(ap, fmt);
    n = vsnprintf(stack + head, sizeof(stack) - (size_t)head, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)head + (size_t)n + 1 >= sizeof(stack) && (line = malloc((size_t)head + (size_t)n + 2)) != NULL) {
        memcpy(line, stack, (size_t)head);
        va_start(ap, fmt);
        vsnprintf(line + head, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    if (line == NULL) { /* out of memory: the cut line still goes out */
        line = stack;
        n = (int)(sizeof(stack) - (size_t)head - 2);
    }
    line[head + n] = '\n';
    write_all(2, line, (size_t)head + (size_t)n + 1);
    if (line != stack) free(line);
}

typedef struct d_main {
    const char *config_path;
    d_server *srv;
    d_listeners *ls;
    struct event_base *base;
} d_main;

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    d_main *m = arg;
    p11kms_config *cfg = NULL;
    d_principals p;
    (void)sig, (void)what;
    if (p11kms_config_load(m->config_path, &cfg) != P11KMS_OK) {
        d_log("SIGHUP: keeping the old principals: %s", p11kms_last_error());
        return;
    }
    if (d_principals_load(cfg, &p) != 0) {
        d_principals_free(&p);
        d_log("SIGHUP: keeping the old principals: out of memory");
    } else {
        d_log("SIGHUP: %zu principal mappings loaded", p.n);
        d_server_set_principals(m->srv, &p);
    }
    p11kms_config_free(cfg);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    d_main *m = arg;
    (void)what;
    d_log("signal %d: finishing %zu in-flight requests", (int)sig, d_server_busy(m->srv));
    d_listeners_free(m->ls);
    m->ls = NULL;
    d_server_drain(m->srv);
}

static int usage(void)
{
    fprintf(stderr, "usage: p11kmsd --config FILE\n");
    return 2;
}

/* Each connection is a descriptor: allow max_connections of them. */
static void raise_fd_limit(unsigned long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur < want + 64) {
        rl.rlim_cur = rl.rlim_max < want + 64 ? rl.rlim_max : want + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    d_main m;
    p11kms_config *cfg = NULL;
    p11kms *h = NULL;
    d_settings s;
    d_principals p;
    d_kms *kms = NULL;
    d_pool *pool = NULL;
    struct event *ev_hup = NULL, *ev_term = NULL, *ev_int = NULL;
    p11kms_rc rc;
    int status = 3;

    memset(&m, 0, sizeof(m));
    memset(&p, 0, sizeof(p));
    if (argc == 2 && (strcmp(argv[1], "--version") == 0)) {
        printf("p11kmsd %s\n", p11kms_version());
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "--config") != 0) return usage();
    m.config_path = argv[2];
    signal(SIGPIPE, SIG_IGN);
    if ((rc = p11kms_config_load(m.config_path, &cfg)) != P11KMS_OK) {
        d_log("%s", p11kms_last_error());
        return p11kms_exit_code(rc);
    }
    if (has_connect(cfg)) {
        /* Its handle would forward to another daemon and act as this host's caller. */
        d_log("%s: connect = makes the command a client of p11kmsd; p11kmsd holds the token itself: remove it",
              m.config_path);
        goto out;
    }
    if (d_settings_load(cfg, &s) != 0 || d_principals_load(cfg, &p) != 0) goto out;
    raise_fd_limit(s.max_connections);
    if (evthread_use_pthreads() != 0 || (m.base = event_base_new()) == NULL) {
        d_log("cannot start the event loop");
        goto out;
    }
    if ((rc = p11kms_open(cfg, &h)) != P11KMS_OK) {
        d_log("%s", p11kms_last_error());
        status = p11kms_exit_code(rc);
        goto out;
    }
    m.srv = d_server_new(m.base, &s);
    kms = d_kms_new(h, &s);
    pool = m.srv && kms ? d_pool_new((unsigned)s.workers, d_kms_run, kms) : NULL;
    if (pool == NULL) {
        d_log("cannot start %lu workers", s.workers);
        goto out;
    }
    d_server_set_pool(m.srv, pool);
    d_server_set_principals(m.srv, &p);
    if ((m.ls = d_listeners_open(m.base, cfg, m.srv)) == NULL) goto out;
    ev_hup = evsignal_new(m.base, SIGHUP, on_hup, &m);
    ev_term = evsignal_new(m.base, SIGTERM, on_term, &m);
    ev_int = evsignal_new(m.base, SIGINT, on_term, &m);
    if (!ev_hup || !ev_term || !ev_int || evsignal_add(ev_hup, NULL) || evsignal_add(ev_term, NULL) ||
        evsignal_add(ev_int, NULL))
        goto out;
    d_log("p11kmsd %s ready: %lu workers, max %lu connections", p11kms_version(), s.workers, s.max_connections);
    event_base_dispatch(m.base);
    d_log("stopped");
    status = 0;
out:
    d_listeners_free(m.ls);
    d_pool_free(pool); /* every accepted job has been answered: the loop exits only then */
    d_kms_free(kms);
    d_server_free(m.srv);
    d_principals_free(&p); /* empty once handed to the server */
    if (ev_hup) event_free(ev_hup);
    if (ev_term) event_free(ev_term);
    if (ev_int) event_free(ev_int);
    if (m.base) event_base_free(m.base);
    p11kms_close(h); /* seals the audit trail */
    p11kms_config_free(cfg);
    return status;
}
