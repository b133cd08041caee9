/* Wiping and constant-time compare moved to util/ (util/wipe.h), which
 * stands on nothing; this name stays for the callers that include it. */
#ifndef PK_CRYPTO_WIPE_H
#define PK_CRYPTO_WIPE_H

#include "util/wipe.h"

#endif
