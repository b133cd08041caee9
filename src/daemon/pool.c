/*
 * A fixed pool of worker threads over one FIFO queue (bounded by
 * max_connections: one job per connection). An idle worker waits on its
 * own condition variable and idle workers are woken last-in first-out: the
 * job goes straight to the worker that ran the previous one (warm caches,
 * the same PKCS#11 session), and the signal is sent after the mutex is
 * released so the woken thread does not block on it at once.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "daemon/daemon.h"

typedef struct d_worker {
    d_pool *p;
    pthread_t thread;
    pthread_cond_t cv;
    d_job *job;             /* handed over by d_pool_submit */
    struct d_worker *next;  /* in the idle stack */
} d_worker;

struct d_pool {
    pthread_mutex_t mu;
    d_job *head, *tail;
    d_worker *idle;
    bool stop;
    unsigned n;
    d_worker *workers;
    d_pool_fn fn;
    void *arg;
};

/* Under p->mu: the next job, waiting idle for one; NULL when stopping with nothing queued. */
static d_job *next_job_inlock(d_pool *p, d_worker *w)
{
    d_job *job;
    for (;;) {
        if ((job = p->head) != NULL) {
            p->head = job->next;
            if (p->head == NULL) p->tail = NULL;
            return job;
        }
        if (p->stop) return NULL;
        w->next = p->idle;
        p->idle = w;
        while (w->job == NULL && !p->stop) pthread_cond_wait(&w->cv, &p->mu);
        if ((job = w->job) != NULL) { /* d_pool_submit took w off the idle stack */
            w->job = NULL;
            return job;
        }
        for (d_worker **q = &p->idle; *q != NULL; q = &(*q)->next) /* stopping: leave the stack */
            if (*q == w) {
                *q = w->next;
                break;
            }
    }
}

static void *worker(void *arg)
{
    d_worker *w = arg;
    d_pool *p = w->p;
    for (;;) {
        d_job *job;
        pthread_mutex_lock(&p->mu);
        job = next_job_inlock(p, w);
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
    p->workers = calloc(n, sizeof(*p->workers));
    if (p->workers == NULL) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    p->fn = fn;
    p->arg = arg;
    for (; p->n < n; p->n++) {
        d_worker *w = &p->workers[p->n];
        w->p = p;
        pthread_cond_init(&w->cv, NULL);
        if (pthread_create(&w->thread, NULL, worker, w) != 0) {
            pthread_cond_destroy(&w->cv);
            break;
        }
    }
    if (p->n == 0) {
        d_pool_free(p);
        return NULL;
    }
    return p;
}

void d_pool_submit(d_pool *p, d_job *job)
{
    d_worker *w;
    pthread_mutex_lock(&p->mu);
    job->next = NULL;
    if ((w = p->idle) != NULL) {
        p->idle = w->next;
        w->job = job;
    } else {
        if (p->tail != NULL) p->tail->next = job;
        else p->head = job;
        p->tail = job;
    }
    pthread_mutex_unlock(&p->mu);
    if (w != NULL) pthread_cond_signal(&w->cv); /* workers live until d_pool_free: w is valid */
}

void d_pool_free(d_pool *p)
{
    if (p == NULL) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    for (unsigned i = 0; i < p->n; i++) pthread_cond_signal(&p->workers[i].cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n; i++) {
        pthread_join(p->workers[i].thread, NULL);
        pthread_cond_destroy(&p->workers[i].cv);
    }
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}
