#include "config.h"

#include <stdio.h>
#include <time.h>

#include "util/timefmt.h"

void pk_time_rfc3339(int64_t epoch_ms, char out[PK_TIME_STR_LEN])
{
    time_t s = (time_t)(epoch_ms / 1000);
    struct tm tm;
    char date[24];
    if (gmtime_r(&s, &tm) == NULL || strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(out, PK_TIME_STR_LEN, "invalid-time");
        return;
    }
    snprintf(out, PK_TIME_STR_LEN, "%.19s.%03dZ", date, (int)(epoch_ms % 1000));
}
