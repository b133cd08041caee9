/*
 * Serialising audit records. Every line is built by the JSON writer from
 * the event's fields only, with keys in a fixed order, so the same event
 * always gives the same bytes and a grep over the log is predictable.
 * Line hashes are over the exact bytes of the line without its newline.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit_impl.h"
#include "json/json_in.h"
#include "util/codec.h"
#include "util/json_out.h"

const char *pk_audit_decision_name(pk_audit_decision d)
{
    switch (d) {
    case PK_AUDIT_DECISION_ALLOWED: return "Allowed";
    case PK_AUDIT_DECISION_EXPLICIT_DENY: return "ExplicitlyDenied";
    case PK_AUDIT_DECISION_IMPLICIT_DENY: return "ImplicitlyDenied";
    case PK_AUDIT_DECISION_NA:
    default: return "n/a";
    }
}

pk_keyid pk_audit_key_id(void)
{
    pk_keyid id;
    memset(&id, 0, sizeof(id));
    id.len = sizeof(PK_AUDIT_KEY_ID) - 1;
    memcpy(id.bytes, PK_AUDIT_KEY_ID, id.len);
    return id;
}

static void put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10) p[i] = (char)('0' + v % 10);
}

/* UTC, RFC 3339 with milliseconds. Formatted by hand: this runs once per record. */
void pk_audit_now(char out[PK_AUDIT_TIME_LEN + 1])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    memcpy(out, "0000-00-00T00:00:00.000Z", PK_AUDIT_TIME_LEN + 1);
    put_digits(out, (unsigned)(tm.tm_year + 1900) % 10000u, 4);
    put_digits(out + 5, (unsigned)tm.tm_mon + 1, 2);
    put_digits(out + 8, (unsigned)tm.tm_mday, 2);
    put_digits(out + 11, (unsigned)tm.tm_hour, 2);
    put_digits(out + 14, (unsigned)tm.tm_min, 2);
    put_digits(out + 17, (unsigned)tm.tm_sec % 60u, 2);
    put_digits(out + 20, (unsigned)(ts.tv_nsec / 1000000), 3);
}

/*
 * A body being written. The first pass writes every field whole; a record
 * that would not fit in PK_AUDIT_MAX_LINE is written again with each string
 * cut to `cap` bytes and optional entries left out past `budget`, and says
 * so ("truncated":true): a record is shortened, never dropped.
 */
typedef struct body_w {
    pk_buf *b;
    size_t cap;    /* 0: strings whole */
    size_t budget; /* 0: no limit on map entries and sids */
    bool truncated;
    size_t dropped; /* map entries left out because their key was already written */
} body_w;

/* Strings are cut to this many bytes in the second pass (at most 6x that once escaped). */
#define CUT_STRING 256
/* Room kept after the maps for the fixed members and the markers. */
#define CUT_RESERVE 512
#define BODY_MAX (PK_AUDIT_MAX_LINE - 256)

/* A JSON string literal; bytes that are not UTF-8 become U+FFFD, so a record is always JSON the verifier reads back. */
static pk_result put_str(body_w *w, const char *s)
{
    size_t n = strlen(s);
    if (w->cap != 0 && n > w->cap) {
        n = w->cap;
        /* Cut before a UTF-8 continuation byte, not inside a character. */
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
        w->truncated = true;
    }
    return pk_json_escape(w->b, s, n);
}

/* ,"key":"value" (or "key":"value" when first). */
static pk_result put_member(body_w *w, bool comma, const char *key, const char *v)
{
    if (comma) PK_GUARD(pk_buf_append(w->b, ",", 1));
    PK_GUARD(put_str(w, key));
    PK_GUARD(pk_buf_append(w->b, ":", 1));
    return put_str(w, v);
}

/* Over the budget (second pass only): undo the entry that began at `start`. */
static bool over_budget(body_w *w, size_t start)
{
    if (w->budget == 0 || w->b->len <= w->budget) return false;
    w->b->len = start;
    w->truncated = true;
    return true;
}

/* Was the escaped key at [at, at+len) already written at one of offs[0..n)? */
static bool seen_key(const body_w *w, size_t (*offs)[2], size_t n, size_t at, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (offs[i][1] == len && memcmp(w->b->data + offs[i][0], w->b->data + at, len) == 0) return true;
    return false;
}

/*
 * A JSON object never gets the same key twice, whatever the caller passes:
 * the verifier (and any strict parser) rejects such a line. The first entry
 * is kept; later ones, compared after escaping (two invalid byte sequences
 * may both become U+FFFD), are counted in "duplicate_keys_dropped".
 */
static pk_result put_map(body_w *w, const char *key, const pk_audit_kv *kv, size_t n)
{
    size_t stack[16][2], (*heap)[2] = NULL, (*offs)[2] = stack, kept = 0;
    pk_result r = PK_OK;

    if (n > PK_ARRAY_LEN(stack)) {
        offs = heap = calloc(n, sizeof(*heap));
        PK_ENSURE_ALLOC(heap);
    }
    PK_TRY(pk_buf_append(w->b, ",", 1));
    PK_TRY(put_str(w, key));
    PK_TRY(pk_buf_append(w->b, ":{", 2));
    for (size_t i = 0; i < n; i++) {
        size_t start = w->b->len, at;
        if (kept > 0) PK_TRY(pk_buf_append(w->b, ",", 1));
        at = w->b->len;
        PK_TRY(put_str(w, kv[i].key));
        if (seen_key(w, offs, kept, at, w->b->len - at)) {
            w->b->len = start;
            w->dropped++;
            continue;
        }
        offs[kept][0] = at;
        offs[kept][1] = w->b->len - at;
        PK_TRY(pk_buf_append(w->b, ":", 1));
        PK_TRY(put_str(w, kv[i].value));
        if (over_budget(w, start)) break;
        kept++;
    }
    PK_TRY(pk_buf_append(w->b, "}", 1));
out:
    free(heap);
    return r;
}

static pk_result put_u64(pk_buf *b, uint64_t v)
{
    char d[24];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return pk_buf_append(b, d + i, sizeof(d) - i);
}

static pk_result check_event(const pk_audit_event *ev)
{
    PK_ENSURE(ev->action != NULL && *ev->action != '\0', P11KMS_ERR_INVALID_ARGUMENT, "audit event without action");
    for (size_t i = 0; i < ev->n_context; i++)
        PK_ENSURE(ev->context[i].key != NULL && ev->context[i].value != NULL, P11KMS_ERR_INVALID_ARGUMENT,
                  "audit event context entry %zu is incomplete", i);
    for (size_t i = 0; i < ev->n_details; i++)
        PK_ENSURE(ev->details[i].key != NULL && ev->details[i].value != NULL, P11KMS_ERR_INVALID_ARGUMENT,
                  "audit event detail %zu is incomplete", i);
    for (size_t i = 0; i < ev->n_sids; i++)
        PK_ENSURE(ev->sids[i] != NULL, P11KMS_ERR_INVALID_ARGUMENT, "audit event sid %zu is NULL", i);
    return PK_OK;
}

static pk_result put_sids(body_w *w, const char *const *sids, size_t n)
{
    PK_GUARD(pk_buf_append_str(w->b, ",\"sids\":["));
    for (size_t i = 0; i < n; i++) {
        size_t start = w->b->len;
        if (i > 0) PK_GUARD(pk_buf_append(w->b, ",", 1));
        PK_GUARD(put_str(w, sids[i]));
        if (over_budget(w, start)) break;
    }
    return pk_buf_append(w->b, "]", 1);
}

/* "auth":{"method":..,"id":..,"request_id":..}: how a daemon caller proved who it is (issue 12). */
static pk_result put_auth(body_w *w, const pk_audit_event *ev)
{
    PK_GUARD(pk_buf_append_str(w->b, ",\"auth\":{"));
    PK_GUARD(put_member(w, false, "method", ev->auth_method));
    if (ev->auth_id != NULL) PK_GUARD(put_member(w, true, "id", ev->auth_id));
    if (ev->auth_request_id != NULL) PK_GUARD(put_member(w, true, "request_id", ev->auth_request_id));
    return pk_buf_append(w->b, "}", 1);
}

static pk_result write_body(body_w *w, const pk_audit_event *ev, const char *request_id)
{
    static const char *const resource_keys[] = {"key_id", "key_version", "alias", "secret_id", "connection"};
    const char *resource[5] = {ev->key_id, ev->key_version, ev->alias, ev->secret_id, ev->connection};
    bool first = true;
    pk_buf *body = w->b;

    PK_GUARD(pk_buf_reserve(body, 512));
    PK_GUARD(put_member(w, false, "request_id", request_id));
    if (ev->principal != NULL)
        PK_GUARD(put_member(w, true, "principal", ev->principal));
    else
        PK_GUARD(pk_buf_append_str(body, ",\"principal\":null"));
    PK_GUARD(put_member(w, true, "action", ev->action));
    PK_GUARD(pk_buf_append_str(body, ",\"resource\":{"));
    for (size_t i = 0; i < PK_ARRAY_LEN(resource_keys); i++) {
        if (resource[i] == NULL) continue;
        PK_GUARD(put_member(w, !first, resource_keys[i], resource[i]));
        first = false;
    }
    PK_GUARD(pk_buf_append(body, "}", 1));
    PK_GUARD(put_map(w, "context", ev->context, ev->n_context));
    PK_GUARD(put_member(w, true, "decision", pk_audit_decision_name(ev->decision)));
    PK_GUARD(put_sids(w, ev->sids, ev->n_sids));
    PK_GUARD(put_member(w, true, "result",
                        ev->pending ? "pending" : ev->result == P11KMS_OK ? "ok" : pk_rc_name(ev->result)));
    if (ev->n_details > 0) PK_GUARD(put_map(w, "details", ev->details, ev->n_details));
    if (ev->auth_method != NULL) PK_GUARD(put_auth(w, ev));
    if (w->dropped > 0) {
        PK_GUARD(pk_buf_append_str(body, ",\"duplicate_keys_dropped\":"));
        PK_GUARD(put_u64(body, w->dropped));
    }
    if (w->truncated) PK_GUARD(pk_buf_append_str(body, ",\"truncated\":true"));
    return PK_OK;
}

/*
 * The members from "request_id" to "details" (and the markers), without
 * the enclosing braces (the line head and end are added under the log's
 * lock).
 */
pk_result pk_audit_event_body(pk_buf *body, const pk_audit_event *ev, const char *request_id)
{
    body_w w = {body, 0, 0, false, 0};
    size_t base = body->len;

    PK_GUARD(check_event(ev));
    PK_GUARD(write_body(&w, ev, request_id));
    if (body->len - base >= BODY_MAX) {
        body->len = base;
        w = (body_w){body, CUT_STRING, base + BODY_MAX - CUT_RESERVE, true, 0};
        PK_GUARD(write_body(&w, ev, request_id));
    }
    PK_ENSURE(body->len - base < BODY_MAX, P11KMS_ERR_LIMIT, "audit record too large (%zu bytes; at most %d)",
              body->len - base, BODY_MAX);
    return PK_OK;
}

pk_result pk_audit_line_head(pk_buf *line, uint64_t seq, const char *type, const char *time)
{
    PK_GUARD(pk_buf_reserve(line, 96));
    PK_GUARD(pk_buf_append_str(line, "{\"v\":1,\"seq\":"));
    PK_GUARD(put_u64(line, seq));
    PK_GUARD(pk_buf_append_str(line, ",\"type\":\""));
    PK_GUARD(pk_buf_append_str(line, type));
    PK_GUARD(pk_buf_append_str(line, "\",\"time\":\""));
    PK_GUARD(pk_buf_append(line, time, PK_AUDIT_TIME_LEN));
    return pk_buf_append(line, "\",", 2);
}

pk_result pk_audit_line_prev_end(pk_buf *line, const uint8_t prev[PK_SHA256_LEN])
{
    char hex[PK_AUDIT_HASH_HEX_LEN + 1];
    pk_hex_encode(prev, PK_SHA256_LEN, hex);
    PK_GUARD(pk_buf_append_str(line, "\"prev\":\""));
    PK_GUARD(pk_buf_append(line, hex, PK_AUDIT_HASH_HEX_LEN));
    return pk_buf_append(line, "\"}", 2);
}

pk_result pk_audit_seal_mac(pk_p11 *p11, const pk_keyid *key, const char *prefix, size_t n, uint8_t mac[PK_HMAC_LEN])
{
    pk_buf msg = {0};
    pk_result r = PK_OK;

    PK_TRY(pk_buf_append_str(&msg, PK_AUDIT_SEAL_DOMAIN));
    PK_TRY(pk_buf_append(&msg, prefix, n));
    PK_TRY(pk_p11_hmac(p11, key, pk_bytes_of(msg.data, msg.len), mac));
out:
    pk_buf_free(&msg);
    return r;
}

pk_result pk_audit_seal_line(pk_buf *line, pk_p11 *p11, const pk_keyid *key, uint64_t seq, const char *time,
                             const char *reason, const uint8_t prev[PK_SHA256_LEN])
{
    uint8_t mac[PK_HMAC_LEN];
    char hex[PK_AUDIT_HASH_HEX_LEN + 1], mac_hex[2 * PK_HMAC_LEN + 1];

    pk_hex_encode(prev, PK_SHA256_LEN, hex);
    PK_GUARD(pk_audit_line_head(line, seq, PK_AUDIT_T_SEAL, time));
    PK_GUARD(pk_buf_printf(line, "\"reason\":\"%s\",\"sealed_seq\":%" PRIu64 ",\"prev\":\"%s\"", reason, seq - 1,
                           hex));
    PK_GUARD(pk_audit_seal_mac(p11, key, (const char *)line->data, line->len, mac));
    pk_hex_encode(mac, PK_HMAC_LEN, mac_hex);
    return pk_buf_printf(line, PK_AUDIT_MAC_MEMBER "%s\"}", mac_hex);
}

bool pk_audit_seal_split(const char *line, size_t len, size_t *prefix_len, uint8_t mac[PK_HMAC_LEN])
{
    const size_t member = sizeof(PK_AUDIT_MAC_MEMBER) - 1, tail = member + 2 * PK_HMAC_LEN + 2;
    char hex[2 * PK_HMAC_LEN + 1];

    if (len < tail + 1) return false;
    if (memcmp(line + len - tail, PK_AUDIT_MAC_MEMBER, member) != 0) return false;
    if (memcmp(line + len - 2, "\"}", 2) != 0) return false;
    memcpy(hex, line + len - tail + member, 2 * PK_HMAC_LEN);
    hex[2 * PK_HMAC_LEN] = '\0';
    for (size_t i = 0; i < 2 * PK_HMAC_LEN; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'))) return false;
    if (pk_failed(pk_hex_decode(hex, mac, PK_HMAC_LEN))) return false;
    *prefix_len = len - tail;
    return true;
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

/*
 * prev_hex gets 65 bytes; prev_file (may be NULL) gets a link record's
 * previous_file. Fails with P11KMS_ERR_INTEGRITY naming what is wrong.
 */
pk_result pk_audit_parse_tail(const char *line, size_t len, pk_audit_tail *t, char *prev_hex, char *prev_file,
                              size_t prev_file_size)
{
    pk_jv *doc = NULL;
    const pk_jv *v;
    const char *type, *prev;
    pk_result r = PK_OK;

    memset(t, 0, sizeof(*t));
    if (prev_file != NULL && prev_file_size > 0) prev_file[0] = '\0';
    PK_TRY(pk_json_parse(line, len, P11KMS_ERR_INTEGRITY, &doc));
    PK_CHECK(pk_jv_typeof(doc) == PK_JV_OBJECT, P11KMS_ERR_INTEGRITY, "record is not a JSON object");
    v = pk_jv_get(doc, "seq");
    PK_CHECK(v != NULL && pk_jv_typeof(v) == PK_JV_INTEGER && pk_jv_int(v) >= 1, P11KMS_ERR_INTEGRITY,
             "record has no valid \"seq\"");
    t->seq = (uint64_t)pk_jv_int(v);
    type = pk_jv_str(pk_jv_get(doc, "type"));
    PK_CHECK(type != NULL && (strcmp(type, PK_AUDIT_T_EVENT) == 0 || strcmp(type, PK_AUDIT_T_SEAL) == 0 ||
                              strcmp(type, PK_AUDIT_T_LINK) == 0 || strcmp(type, PK_AUDIT_T_REPAIR) == 0),
             P11KMS_ERR_INTEGRITY, "record has no valid \"type\"");
    copy_str(t->type, sizeof(t->type), type);
    PK_CHECK(pk_jv_str(pk_jv_get(doc, "time")) != NULL, P11KMS_ERR_INTEGRITY, "record has no \"time\"");
    prev = pk_jv_str(pk_jv_get(doc, "prev"));
    PK_CHECK(prev != NULL && strlen(prev) == PK_AUDIT_HASH_HEX_LEN, P11KMS_ERR_INTEGRITY,
             "record has no valid \"prev\"");
    {
        uint8_t tmp[PK_SHA256_LEN];
        PK_CHECK(pk_ok(pk_hex_decode(prev, tmp, sizeof(tmp))), P11KMS_ERR_INTEGRITY, "record has no valid \"prev\"");
    }
    if (prev_hex != NULL) copy_str(prev_hex, PK_AUDIT_HASH_HEX_LEN + 1, prev);
    copy_str(t->reason, sizeof(t->reason), pk_jv_str(pk_jv_get(doc, "reason")));
    if (strcmp(type, PK_AUDIT_T_SEAL) == 0) {
        PK_CHECK(pk_jv_str(pk_jv_get(doc, "mac")) != NULL, P11KMS_ERR_INTEGRITY, "seal has no \"mac\"");
        PK_CHECK(t->reason[0] != '\0', P11KMS_ERR_INTEGRITY, "seal has no \"reason\"");
    }
    if (strcmp(type, PK_AUDIT_T_LINK) == 0) {
        v = pk_jv_get(doc, "file");
        PK_CHECK(v != NULL && pk_jv_typeof(v) == PK_JV_INTEGER && pk_jv_int(v) >= 2, P11KMS_ERR_INTEGRITY,
                 "link has no valid \"file\"");
        t->file_no = (uint64_t)pk_jv_int(v);
        PK_CHECK(pk_jv_str(pk_jv_get(doc, "previous_file")) != NULL, P11KMS_ERR_INTEGRITY,
                 "link has no \"previous_file\"");
        if (prev_file != NULL) copy_str(prev_file, prev_file_size, pk_jv_str(pk_jv_get(doc, "previous_file")));
    }
    if (strcmp(type, PK_AUDIT_T_EVENT) == 0) {
        PK_CHECK(pk_jv_str(pk_jv_get(doc, "action")) != NULL, P11KMS_ERR_INTEGRITY, "event has no \"action\"");
        PK_CHECK(pk_jv_str(pk_jv_get(doc, "result")) != NULL, P11KMS_ERR_INTEGRITY, "event has no \"result\"");
    }
out:
    pk_json_free(doc);
    return r;
}

/*
 * The fixed head and end that every event line has, read without a JSON
 * parser: {"v":1,"seq":N,"type":"event", ... ,"prev":"<64 hex>"}. Used
 * for a line that is not valid JSON, to tell whether it is still linked
 * into the chain (an old writer's line, or a damaged one).
 */
bool pk_audit_parse_event_frame(const char *line, size_t len, pk_audit_tail *t, char prev_hex[PK_AUDIT_HASH_HEX_LEN + 1])
{
    static const char head[] = "{\"v\":1,\"seq\":", type[] = ",\"type\":\"" PK_AUDIT_T_EVENT "\",", end[] = ",\"prev\":\"";
    const size_t hl = sizeof(head) - 1, tl = sizeof(type) - 1, el = sizeof(end) - 1;
    const size_t tail = el + PK_AUDIT_HASH_HEX_LEN + 2;
    uint64_t seq = 0;
    size_t i = hl, digits = 0;
    uint8_t tmp[PK_SHA256_LEN];

    memset(t, 0, sizeof(*t));
    if (len < hl + 1 + tl + tail || memcmp(line, head, hl) != 0) return false;
    for (; i < len && line[i] >= '0' && line[i] <= '9' && digits < 19; i++, digits++)
        seq = seq * 10 + (uint64_t)(line[i] - '0');
    if (digits == 0 || seq == 0 || line[hl] == '0') return false;
    if (len - i < tl + tail || memcmp(line + i, type, tl) != 0) return false;
    if (memcmp(line + len - tail, end, el) != 0 || memcmp(line + len - 2, "\"}", 2) != 0) return false;
    memcpy(prev_hex, line + len - tail + el, PK_AUDIT_HASH_HEX_LEN);
    prev_hex[PK_AUDIT_HASH_HEX_LEN] = '\0';
    for (size_t k = 0; k < PK_AUDIT_HASH_HEX_LEN; k++)
        if (!((prev_hex[k] >= '0' && prev_hex[k] <= '9') || (prev_hex[k] >= 'a' && prev_hex[k] <= 'f'))) return false;
    if (pk_failed(pk_hex_decode(prev_hex, tmp, sizeof(tmp)))) return false;
    t->seq = seq;
    snprintf(t->type, sizeof(t->type), "%s", PK_AUDIT_T_EVENT);
    return true;
}
