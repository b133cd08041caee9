/* A fixed pool of worker threads over one FIFO queue (bounded by max_connections: one job per connection). */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "daemon/daemon.h"

struct d_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    d_job *head, *tail;
    bool stop;
    unsigned n;
    pthread_t *threads;
    d_pool_fn fn;
    void *arg;
};

static void *worker(void *arg)
{
    d_pool *p = arg;
    for (;;) {
        d_job *job;
        pthread_mutex_lock(&p->mu);
        while (p->head == NULL && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
        job = p->head;
        if (job != NULL) {
            p->head = job->next;
            if (p->head == NULL) p->tail = NULL;
        }
        pthread_mutex_unlock(&p->mu);
        if (job == NULL) return NULL;
        job->next = NULL;
        p->fn(job, p->arg);
        d_server_reply(job);
    }
}

d_pool *d_pool_new(unsigned n, d_pool_fn fn, void *arg)
{
    d_pool *p = calloc(1, sizeof(*p));
    if (p == NULL) return NULL;
    p->threads = calloc(n, sizeof(*p->threads));
    if (p->threads == NULL) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->fn = fn;
    p->arg = arg;
    for (; p->n < n; p->n++)
        if (pthread_create(&p->threads[p->n], NULL, worker, p) != 0) break;
    if (p->n == 0) {
        d_pool_free(p);
        return NULL;
    }
    return p;
}

void d_pool_submit(d_pool *p, d_job *job)
{
    pthread_mutex_lock(&p->mu);
    job->next = NULL;
    if (p->tail != NULL) p->tail->next = job;
    else p->head = job;
    p->tail = job;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void d_pool_free(d_pool *p)
{
    if (p == NULL) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}
