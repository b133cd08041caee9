/*
 * The arena a compiled policy lives in. A policy is built once and freed
 * as a whole, so a bump allocator over a list of blocks keeps compile to a
 * handful of mallocs and makes pk_policy_free trivially leak-free.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "policy/policy_impl.h"

#define POL_BLOCK_MIN 8192

struct pol_block {
    pol_block *next;
    size_t used;
    size_t cap;
    _Alignas(16) unsigned char data[];
};

void *pol_arena_alloc(pol_arena *a, size_t n)
{
    pol_block *b = a->head;
    void *p;

    n = (n + 15u) & ~(size_t)15u;
    if (n == 0) n = 16;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > POL_BLOCK_MIN ? n : POL_BLOCK_MIN;
        if (cap > SIZE_MAX - sizeof(*b)) return NULL;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL) return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *pol_arena_strndup(pol_arena *a, const char *s, size_t n)
{
    char *p;
    if (n == SIZE_MAX) return NULL;
    p = pol_arena_alloc(a, n + 1);
    if (p == NULL) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void pol_arena_free(pol_arena *a)
{
    pol_block *b = a->head;
    while (b != NULL) {
        pol_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}
