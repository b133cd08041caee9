#include "config.h"

#include <pthread.h>
#include <stdatomic.h>

#include "util/forkgen.h"

static atomic_ulong generation;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Only a child runs this, single-threaded: a relaxed increment suffices. */
static void on_fork_child(void) { atomic_fetch_add_explicit(&generation, 1, memory_order_relaxed); }
static void register_handler(void) { (void)pthread_atfork(NULL, NULL, on_fork_child); }

unsigned long pk_fork_generation(void)
{
    /*
     * Registered before any handle records a generation: a fork before the
     * first call leaves nothing that could be mistaken for our own.
     */
    pthread_once(&once, register_handler);
    return atomic_load_explicit(&generation, memory_order_acquire);
}
