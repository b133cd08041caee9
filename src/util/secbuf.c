/*
 * A small locked-memory allocator behind pk_secbuf.
 *
 * Why not mmap per buffer: a decrypt on the hot path would pay five
 * syscalls (mmap, mlock, madvise, munlock, munmap), about 10% of a
 * session-key GCM operation. Instead chunks of power-of-two size classes
 * are carved from locked, MADV_DONTDUMP regions and recycled through free
 * lists; every chunk is wiped when freed. Like malloc this state is
 * process-wide; it holds no configuration and is fork-safe because a child
 * only inherits wiped free chunks and its own live buffers.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util/secbuf.h"
#include "util/wipe.h"

#define CLASS_MIN_SHIFT 5   /* 32 bytes */
#define CLASS_MAX_SHIFT 16  /* 64 KiB */
#define CLASS_COUNT (CLASS_MAX_SHIFT - CLASS_MIN_SHIFT + 1)
#define REGION_BYTES (256u * 1024u)
#define DIRECT_CLASS 0xffu

/* 16 bytes so the payload stays 16-byte aligned. */
typedef struct chunk_header {
    size_t size;     /* usable bytes */
    uint32_t cls;    /* size class, or DIRECT_CLASS for a private mapping */
    uint32_t magic;
} chunk_header;

#define CHUNK_MAGIC 0x5ecb0f3du

typedef struct free_chunk {
    struct free_chunk *next;
} free_chunk;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static free_chunk *free_lists[CLASS_COUNT];
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/*
 * fork while another thread holds pool_lock would leave it locked for ever
 * in the child (only the forking thread survives): hold it across fork, so
 * the free lists are consistent and the lock free on both sides.
 */
static void pool_prepare(void) { pthread_mutex_lock(&pool_lock); }
static void pool_release(void) { pthread_mutex_unlock(&pool_lock); }
static void register_atfork(void) { (void)pthread_atfork(pool_prepare, pool_release, pool_release); }

static void *map_locked(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    /* Best effort: a low RLIMIT_MEMLOCK must not make p11kms unusable. */
    (void)mlock(p, n);
#ifdef MADV_DONTDUMP
    (void)madvise(p, n, MADV_DONTDUMP);
#endif
    return p;
}

static int class_for(size_t n)
{
    size_t need = n + sizeof(chunk_header);
    for (int c = 0; c < CLASS_COUNT; c++)
        if (need <= ((size_t)1 << (c + CLASS_MIN_SHIFT))) return c;
    return -1;
}

/* Carve a fresh region into chunks of one class; call with pool_lock held. */
static int refill_inlock(int c)
{
    size_t chunk = (size_t)1 << (c + CLASS_MIN_SHIFT);
    size_t region = chunk > REGION_BYTES / 4 ? chunk * 4 : REGION_BYTES;
    uint8_t *base = map_locked(region);
    if (base == NULL) return -1;
    for (size_t off = 0; off + chunk <= region; off += chunk) {
        free_chunk *fc = (free_chunk *)(base + off);
        fc->next = free_lists[c];
        free_lists[c] = fc;
    }
    return 0;
}

void *pk_secmem_alloc(size_t n)
{
    chunk_header *h;
    int c = class_for(n);

    if (c < 0) {
        size_t total = n + sizeof(chunk_header);
        if (total < n) return NULL;
        h = map_locked(total);
        if (h == NULL) return NULL;
        h->cls = DIRECT_CLASS;
    } else {
        pthread_once(&atfork_once, register_atfork);
        pthread_mutex_lock(&pool_lock);
        if (free_lists[c] == NULL && refill_inlock(c) != 0) {
            pthread_mutex_unlock(&pool_lock);
            return NULL;
        }
        h = (chunk_header *)free_lists[c];
        free_lists[c] = free_lists[c]->next;
        pthread_mutex_unlock(&pool_lock);
        h->cls = (uint32_t)c;
    }
    h->size = n;
    h->magic = CHUNK_MAGIC;
    memset(h + 1, 0, n);
    return h + 1;
}

void pk_secmem_free(void *p)
{
    chunk_header *h;
    if (p == NULL) return;
    h = (chunk_header *)p - 1;
    if (h->magic != CHUNK_MAGIC) abort(); /* corrupt or foreign pointer: never continue */
    pk_wipe(p, h->size);
    if (h->cls == DIRECT_CLASS) {
        size_t total = h->size + sizeof(chunk_header);
        pk_wipe(h, sizeof(*h));
        munlock(h, total);
        munmap(h, total);
        return;
    }
    int c = (int)h->cls;
    pk_wipe(h, sizeof(*h));
    pthread_mutex_lock(&pool_lock);
    ((free_chunk *)h)->next = free_lists[c];
    free_lists[c] = (free_chunk *)h;
    pthread_mutex_unlock(&pool_lock);
}

pk_result pk_secbuf_alloc(pk_secbuf *b, size_t cap)
{
    PK_ENSURE(cap < SIZE_MAX / 2, P11KMS_ERR_LIMIT, "secret too large");
    b->data = pk_secmem_alloc(cap + 1); /* +1 for pk_secbuf_cstr */
    PK_ENSURE_ALLOC(b->data);
    b->len = 0;
    b->cap = cap + 1;
    return PK_OK;
}

pk_result pk_secbuf_reserve(pk_secbuf *b, size_t extra)
{
    size_t need, cap;
    uint8_t *p;

    PK_ENSURE(extra <= SIZE_MAX / 2 - b->len, P11KMS_ERR_LIMIT, "secret too large");
    need = b->len + extra + 1; /* +1 keeps room for pk_secbuf_cstr */
    if (need <= b->cap && b->data != NULL) return PK_OK;
    cap = b->cap ? b->cap : 32;
    while (cap < need) cap *= 2;
    p = pk_secmem_alloc(cap);
    PK_ENSURE_ALLOC(p);
    if (b->len) memcpy(p, b->data, b->len);
    pk_secmem_free(b->data);
    b->data = p;
    b->cap = cap;
    return PK_OK;
}

pk_result pk_secbuf_append(pk_secbuf *b, const void *p, size_t n)
{
    PK_GUARD(pk_secbuf_reserve(b, n));
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return PK_OK;
}

pk_result pk_secbuf_set(pk_secbuf *b, const void *p, size_t n)
{
    b->len = 0;
    return pk_secbuf_append(b, p, n);
}

pk_result pk_secbuf_cstr(pk_secbuf *b)
{
    PK_GUARD(pk_secbuf_reserve(b, 0));
    b->data[b->len] = '\0';
    return PK_OK;
}

void pk_secbuf_free(pk_secbuf *b)
{
    if (b == NULL) return;
    pk_secmem_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
