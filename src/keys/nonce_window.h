/*
 * The GCM nonce budget of one key version, shared by CMK versions (keys/)
 * and namespace-key versions (secrets/).
 *
 * Each version may be used for at most a bound of invocations (NIST SP
 * 800-38D; PK_NONCE_LIMIT). Writers reserve blocks of invocations in the
 * key's store record inside a write transaction (persisted before use, so
 * a crash only wastes a block); the reservation that would pass the bound
 * makes a new version first. A handle then hands out the reserved block
 * from memory: this window. Blocks start small (CLI processes use a few)
 * and double per reservation for long-lived handles.
 *
 * No locking here: the owner holds its own lock around every call.
 */
#ifndef PK_KEYS_NONCE_WINDOW_H
#define PK_KEYS_NONCE_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#define PK_NONCE_BLOCK_MIN 1024u
#define PK_NONCE_BLOCK_MAX (1u << 20)

typedef struct pk_nonce_window {
    uint32_t version;   /* the key version the reserved invocations belong to */
    uint64_t next, end; /* reserved and not yet used: [next, end) */
    uint32_t block;     /* size of the next reservation (0 = PK_NONCE_BLOCK_MIN) */
} pk_nonce_window;

/* Take one invocation counter of version; false when the window holds none for it. */
static inline bool pk_nonce_window_take(pk_nonce_window *w, uint32_t version, uint64_t *counter)
{
    if (w->version != version || w->next >= w->end) return false;
    *counter = w->next++;
    return true;
}

/* How many invocations to reserve next (never more than the bound). */
static inline uint64_t pk_nonce_window_block(const pk_nonce_window *w, uint64_t limit)
{
    uint64_t b = w->block ? w->block : PK_NONCE_BLOCK_MIN;
    return b > limit ? limit : b;
}

/*
 * In the reservation transaction: whether reserving block more on top of
 * reserved passes the bound (then the caller makes a new version and
 * reserves from 0).
 */
static inline bool pk_nonce_budget_spent(uint64_t reserved, uint64_t block, uint64_t limit)
{
    return reserved + block > limit;
}

/*
 * After a reservation of [start, start + block) for version was committed,
 * its first invocation (start) handed to the caller: keep the rest and
 * grow the next block.
 */
static inline void pk_nonce_window_fill(pk_nonce_window *w, uint32_t version, uint64_t start, uint64_t block)
{
    uint32_t b = w->block ? w->block : PK_NONCE_BLOCK_MIN;
    w->version = version;
    w->next = start + 1;
    w->end = start + block;
    w->block = b < PK_NONCE_BLOCK_MAX ? b * 2 : b;
}

#endif
