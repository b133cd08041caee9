/* Audit log writer: writing lines and appending records (see audit_log.c, Locking). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit_impl.h"
#include "conf/conf.h"
#include "util/codec.h"
#include "util/forkgen.h"
#include "util/group_commit.h"
#include "util/json_out.h"
#include "audit/audit_log_impl.h"

/* ---- Writing lines ---- */

/*
 * Write a->line (without newline) as the next line. On any failure the
 * file is truncated back to its size before the write, so no partial line
 * breaks the chain, and the caller gets the fail-closed error.
 */
pk_result al_append_line_inlock(pk_audit *a, uint64_t seq, const char *type, const char *reason)
{
    uint8_t hash[PK_SHA256_LEN];
    off_t before = a->size;

    PK_GUARD(pk_sha256_digest(a->hasher, a->line.data, a->line.len, hash));
    PK_GUARD(pk_buf_append(&a->line, "\n", 1));
    if (pk_audit_write_all(a->fd, a->line.data, a->line.len) != 0) {
        int err = errno;
        /* Best effort: if this fails too the next append sees a torn tail and repairs it. */
        if (ftruncate(a->fd, before) != 0) a->size = -1;
        return al_unavailable_errno(a, err);
    }
    a->size += (off_t)a->line.len;
    (void)pk_gc_next_ticket(&a->gc);
    if (a->dirty_since_ms == 0) a->dirty_since_ms = al_mono_ms();
    a->tail.seq = seq;
    memcpy(a->tail.hash, hash, sizeof(hash));
    snprintf(a->tail.type, sizeof(a->tail.type), "%s", type);
    snprintf(a->tail.reason, sizeof(a->tail.reason), "%s", reason != NULL ? reason : "");
    if (strcmp(type, PK_AUDIT_T_SEAL) == 0) {
        a->unsealed = 0;
        a->unsealed_since_ms = 0;
        a->stats.seals++;
    } else {
        if (a->unsealed++ == 0) a->unsealed_since_ms = al_mono_ms();
    }
    return PK_OK;
}

pk_result al_seal_inlock(pk_audit *a, const char *reason)
{
    char now[PK_AUDIT_TIME_LEN + 1];
    uint64_t seq = a->tail.seq + 1;
    pk_result r;

    pk_audit_now(now);
    pk_buf_reset(&a->line);
    r = pk_audit_seal_line(&a->line, a->p11, &a->key, seq, now, reason, a->tail.hash);
    if (pk_failed(r)) return pk_annotate(pk_recode(r, P11KMS_ERR_AUDIT_UNAVAILABLE), "audit unavailable: cannot seal %s: ", a->path);
    return al_append_line_inlock(a, seq, PK_AUDIT_T_SEAL, reason);
}

/* A torn write left by a crashed writer: cut it off and record that we did. */
pk_result al_repair_inlock(pk_audit *a, off_t torn)
{
    char now[PK_AUDIT_TIME_LEN + 1];
    uint64_t seq;

    if (ftruncate(a->fd, a->size - torn) != 0) return al_unavailable_errno(a, errno);
    a->size -= torn;
    seq = a->tail.seq + 1;
    pk_audit_now(now);
    pk_buf_reset(&a->line);
    PK_GUARD(pk_audit_line_head(&a->line, seq, PK_AUDIT_T_REPAIR, now));
    PK_GUARD(pk_buf_printf(&a->line, "\"discarded_bytes\":%lld,", (long long)torn));
    PK_GUARD(pk_audit_line_prev_end(&a->line, a->tail.hash));
    return al_append_line_inlock(a, seq, PK_AUDIT_T_REPAIR, NULL);
}

pk_result al_link_line(pk_audit *a, uint64_t seq, const char *reason, uint64_t file_no, const char *prev_name,
                           const uint8_t prev[PK_SHA256_LEN])
{
    char now[PK_AUDIT_TIME_LEN + 1];
    pk_audit_now(now);
    pk_buf_reset(&a->line);
    PK_GUARD(pk_audit_line_head(&a->line, seq, PK_AUDIT_T_LINK, now));
    PK_GUARD(pk_buf_printf(&a->line, "\"reason\":\"%s\",\"file\":%" PRIu64 ",\"previous_file\":", reason, file_no));
    PK_GUARD(pk_json_escape(&a->line, prev_name, strlen(prev_name)));
    PK_GUARD(pk_buf_append(&a->line, ",", 1));
    return pk_audit_line_prev_end(&a->line, prev);
}

/* ---- Appending ---- */

static pk_result write_event_inlock(pk_audit *a, const pk_buf *body)
{
    char now[PK_AUDIT_TIME_LEN + 1];
    uint64_t seq = a->tail.seq + 1;

    pk_audit_now(now);
    pk_buf_reset(&a->line);
    PK_GUARD(pk_audit_line_head(&a->line, seq, PK_AUDIT_T_EVENT, now));
    PK_GUARD(pk_buf_append(&a->line, body->data, body->len));
    PK_GUARD(pk_buf_append(&a->line, ",", 1));
    PK_GUARD(pk_audit_line_prev_end(&a->line, a->tail.hash));
    PK_GUARD(al_append_line_inlock(a, seq, PK_AUDIT_T_EVENT, NULL));
    a->stats.records++;
    if (a->unsealed >= a->seal_every) PK_GUARD(al_seal_inlock(a, a->seal_every == 1 ? "record" : "count"));
    if (a->max_bytes > 0 && (uint64_t)a->size >= a->max_bytes) PK_GUARD(al_rotate_inlock(a, NULL, 0));
    return PK_OK;
}

/*
 * A fresh request id: a UUID (version 4 layout) made of the handle's random
 * base plus a per-handle counter. Ids must be unique, not secret, and this
 * costs no system call (the DRBG checks getpid() on every call).
 */
static void request_id_new(pk_audit *a, char out[PK_AUDIT_REQUEST_ID_MAX + 1])
{
    uint8_t id[PK_UUID_LEN];
    uint64_t n = __atomic_add_fetch(&a->id_counter, 1, __ATOMIC_RELAXED);
    uint64_t low = pk_load_be64(a->id_base + 8) + n;

    memcpy(id, a->id_base, 8);
    pk_store_be64(id + 8, low);
    id[6] = (uint8_t)((id[6] & 0x0f) | 0x40); /* version 4 */
    id[8] = (uint8_t)((id[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    pk_uuid_format(id, out);
}

pk_result pk_audit_write(pk_audit *a, const pk_audit_event *ev, char request_id_out[PK_AUDIT_REQUEST_ID_MAX + 1])
{
    char rid[PK_AUDIT_REQUEST_ID_MAX + 1];
    pk_buf body = {0};
    uint64_t ticket;
    bool wake;
    pk_result r = PK_OK;

    PK_ENSURE_REF(a);
    PK_ENSURE_REF(ev);
    if (ev->request_id != NULL) {
        PK_ENSURE(strlen(ev->request_id) <= PK_AUDIT_REQUEST_ID_MAX, P11KMS_ERR_INVALID_ARGUMENT,
                  "request id longer than %d characters", PK_AUDIT_REQUEST_ID_MAX);
        snprintf(rid, sizeof(rid), "%s", ev->request_id);
    } else {
        request_id_new(a, rid);
    }
    if (request_id_out != NULL) snprintf(request_id_out, PK_AUDIT_REQUEST_ID_MAX + 1, "%s", rid);
    if (a->disabled) return PK_OK;

    /* Serialise outside the locks; only numbering, hashing and write(2) happen inside. */
    PK_TRY(pk_audit_event_body(&body, ev, rid));
    pthread_mutex_lock(&a->mu);
    r = al_lock_and_follow(a);
    if (pk_ok(r)) {
        /* A first undurable line must be synced within the flush interval. */
        wake = a->dirty_since_ms == 0;
        r = write_event_inlock(a, &body);
        if (pk_failed(r))
            al_drop_lock(a); /* check everything again next time */
        else
            al_release(a);
        if (wake && a->dirty_since_ms != 0) al_nudge_flusher(a, a->dirty_since_ms + a->flush_interval_ms);
    }
    ticket = pk_gc_last_ticket(&a->gc);
    pthread_mutex_unlock(&a->mu);
    PK_TRY(r);
    if (a->sync == PK_AUDIT_SYNC_ALWAYS) PK_TRY(al_sync_upto(a, ticket));
out:
    pk_buf_free(&body);
    return r;
}
