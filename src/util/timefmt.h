/* Timestamps as RFC 3339 UTC with milliseconds: 2026-11-23T00:12:34.567Z. */
#ifndef PK_UTIL_TIMEFMT_H
#define PK_UTIL_TIMEFMT_H

#include <stdint.h>

#define PK_TIME_STR_LEN 32

void pk_time_rfc3339(int64_t epoch_ms, char out[PK_TIME_STR_LEN]);

#endif
