/*
 * The process's fork generation: one counter, bumped in every forked child
 * by one pthread_atfork handler, so a handle (PKCS#11 connection, audit
 * trail, store flusher) notices it was inherited without a getpid() per
 * call. It is process-wide because fork is a process event; it holds no
 * configuration.
 */
#ifndef P11KMS_UTIL_FORKGEN_H
#define P11KMS_UTIL_FORKGEN_H

/* The generation now; the first call registers the atfork handler. */
unsigned long pk_fork_generation(void);

#endif
