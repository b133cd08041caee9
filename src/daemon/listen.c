/*
 * Listeners: `listen = unix:PATH` (HTTP/1.1, the peer's SO_PEERCRED decide
 * the principal) and `listen = https://ADDR:PORT` (TLS 1.2+, optional
 * client certificates). Sockets passed by systemd (LISTEN_FDS/LISTEN_PID,
 * sd_listen_fds(3)) are used instead when present: AF_UNIX ones as unix:,
 * the others as https:.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/listener.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/daemon.h"

#define SD_LISTEN_FDS_START 3
#define MAX_LISTENERS 16

typedef struct d_listener {
    d_listeners *owner;
    struct evconnlistener *l;
    bool is_unix;
    char unlink_path[108];
} d_listener;

struct d_listeners {
    d_server *srv;
    SSL_CTX *tls;
    d_listener v[MAX_LISTENERS];
    size_t n;
};


static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    d_listener *li = arg;
    d_peer peer;
    (void)l, (void)salen;
    memset(&peer, 0, sizeof(peer));
    if (li->is_unix) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        peer.is_unix = true;
        snprintf(peer.addr, sizeof(peer.addr), "unix");
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            peer.has_cred = true;
            peer.uid = cred.uid;
            peer.gid = cred.gid;
            snprintf(peer.addr, sizeof(peer.addr), "unix:uid=%u", (unsigned)cred.uid);
        }
    } else {
        int one = 1;
        /*
         * Without TCP_NODELAY the answer's second TLS record waits for the
         * ACK of the first, which the client delays (40 ms on Linux): every
         * keep-alive request over HTTPS took ~44 ms.
         */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        peer.is_tls = true;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, peer.addr, sizeof(peer.addr));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, peer.addr, sizeof(peer.addr));
    }
    d_server_accept(li->owner->srv, fd, &peer, li->is_unix ? NULL : li->owner->tls);
}

static int lookup_id(const char *v, bool group, unsigned *out)
{
    char *end = NULL;
    unsigned long n = strtoul(v, &end, 10);
    if (*end == '\0') {
        *out = (unsigned)n;
        return 0;
    }
    if (group) {
        struct group *g = getgrnam(v);
        if (g == NULL) return -1;
        *out = g->gr_gid;
    } else {
        struct passwd *pw = getpwnam(v);
        if (pw == NULL) return -1;
        *out = pw->pw_uid;
    }
    return 0;
}

/* Bind PATH: a stale socket left by a crash is replaced; any other file is not touched. */
static int bind_unix(const p11kms_config *cfg, const char *path)
{
    struct sockaddr_un sa;
    struct stat st;
    const char *mode = p11kms_config_get(cfg, "socket_mode");
    const char *owner = p11kms_config_get(cfg, "socket_owner");
    const char *group = p11kms_config_get(cfg, "socket_group");
    unsigned uid = (unsigned)-1, gid = (unsigned)-1;
    int fd;

    if (owner && lookup_id(owner, false, &uid) != 0) {
        d_log("socket_owner: no user '%s'", owner);
        return -1;
    }
    if (group && lookup_id(group, true, &gid) != 0) {
        d_log("socket_group: no group '%s'", group);
        return -1;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            d_log("listen unix:%s: the path exists and is not a socket", path);
            return -1;
        }
        unlink(path);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        chmod(path, mode ? (mode_t)strtoul(mode, NULL, 8) : 0660) != 0 ||
        ((owner || group) && chown(path, uid, gid) != 0)) {
        d_log("listen unix:%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

static int bind_tcp(const char *hostport)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss), fd, one = 1;
    char buf[128];
    memset(&ss, 0, sizeof(ss));
    snprintf(buf, sizeof(buf), "%s", hostport);
    if (evutil_parse_sockaddr_port(buf, (struct sockaddr *)&ss, &len) != 0) {
        d_log("listen https://%s: not an IP address and port", hostport);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, (socklen_t)len) != 0) {
        d_log("listen https://%s: %s", hostport, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

static int add(d_listeners *ls, struct event_base *base, int fd, bool is_unix, const char *unlink_path)
{
    d_listener *li;
    if (ls->n == MAX_LISTENERS) {
        d_log("more than %d listeners", MAX_LISTENERS);
        close(fd);
        return -1;
    }
    li = &ls->v[ls->n];
    li->owner = ls;
    li->is_unix = is_unix;
    if (unlink_path) snprintf(li->unlink_path, sizeof(li->unlink_path), "%s", unlink_path);
    evutil_make_socket_nonblocking(fd);
    li->l = evconnlistener_new(base, accept_cb, li, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024, fd);
    if (li->l == NULL) {
        d_log("cannot listen: %s", strerror(errno));
        close(fd);
        return -1;
    }
    ls->n++;
    return 0;
}

static int activated_fds(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    int n;
    if (pid == NULL || fds == NULL || strtol(pid, NULL, 10) != (long)getpid()) return 0;
    n = (int)strtol(fds, NULL, 10);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return n > 0 && n <= MAX_LISTENERS ? n : 0;
}

static bool need_tls(const p11kms_config *cfg, int nact)
{
    const char *k, *v;
    for (int i = 0; i < nact; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(SD_LISTEN_FDS_START + i, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family != AF_UNIX)
            return true;
    }
    for (size_t i = 0; nact == 0 && p11kms_config_entry(cfg, i, &k, &v); i++)
        if (strcmp(k, "listen") == 0 && strncmp(v, "https://", 8) == 0) return true;
    return false;
}

d_listeners *d_listeners_open(struct event_base *base, const p11kms_config *cfg, d_server *srv)
{
    d_listeners *ls = calloc(1, sizeof(*ls));
    int nact = activated_fds();
    const char *k, *v;
    if (ls == NULL) return NULL;
    ls->srv = srv;
    if (need_tls(cfg, nact) && (ls->tls = d_tls_context(cfg)) == NULL) goto fail;
    for (int i = 0; i < nact; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = SD_LISTEN_FDS_START + i;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) continue;
        if (add(ls, base, fd, ss.ss_family == AF_UNIX, NULL) != 0) goto fail;
    }
    for (size_t i = 0; nact == 0 && p11kms_config_entry(cfg, i, &k, &v); i++) {
        int fd;
        if (strcmp(k, "listen") != 0) continue;
        fd = strncmp(v, "unix:", 5) == 0 ? bind_unix(cfg, v + 5) : bind_tcp(v + 8);
        if (fd < 0 || add(ls, base, fd, v[0] == 'u', v[0] == 'u' ? v + 5 : NULL) != 0) goto fail;
        d_log("listening on %s", v);
    }
    if (ls->n == 0) {
        d_log("nothing to listen on: add listen = unix:PATH or listen = https://ADDR:PORT to %s",
              p11kms_config_path(cfg));
        goto fail;
    }
    return ls;
fail:
    d_listeners_free(ls);
    return NULL;
}

void d_listeners_free(d_listeners *ls)
{
    if (ls == NULL) return;
    for (size_t i = 0; i < ls->n; i++) {
        evconnlistener_free(ls->v[i].l);
        if (ls->v[i].unlink_path[0]) unlink(ls->v[i].unlink_path);
    }
    d_tls_context_free(ls->tls);
    free(ls);
}
