/*
 * AWS Signature Version 4, the pure part: parse the Authorization header and
 * build the canonical request and the string to sign (AWS "Create a
 * canonical request for Signature Version 4"). No key, no HSM, no store:
 * the signing-key chain and the comparison are in core/api_sigv4.c. This
 * folder calls only src/crypto (SHA-256) and src/util.
 */
#ifndef PK_AUTH_SIGV4_H
#define PK_AUTH_SIGV4_H

#include <stdbool.h>
#include <stdint.h>

#include "p11kms/p11kms.h"
#include "util/bytes.h"
#include "util/result.h"

#define PK_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define PK_SIGV4_AKID_MAX 128
#define PK_SIGV4_SCOPE_PART_MAX 64
#define PK_SIGV4_SIGNED_HEADERS_MAX 2048
#define PK_SIGV4_SIG_LEN 32
#define PK_SIGV4_AMZ_DATE_LEN 16 /* 20150830T123600Z */

/* The Authorization header's parts. */
typedef struct pk_sigv4_auth {
    char akid[PK_SIGV4_AKID_MAX + 1];
    char date[9];                               /* yyyymmdd of the credential scope */
    char region[PK_SIGV4_SCOPE_PART_MAX + 1];
    char service[PK_SIGV4_SCOPE_PART_MAX + 1];
    char terminator[PK_SIGV4_SCOPE_PART_MAX + 1]; /* must be aws4_request */
    char signed_headers[PK_SIGV4_SIGNED_HEADERS_MAX + 1]; /* "host;x-amz-date" */
    uint8_t signature[PK_SIGV4_SIG_LEN];
} pk_sigv4_auth;

/*
 * Parse "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
 * SignedHeaders=a;b, Signature=HEX". Anything malformed is
 * P11KMS_ERR_INCOMPLETE_SIGNATURE; a signature that is not 64 hex digits is
 * P11KMS_ERR_SIGNATURE_INVALID.
 */
PK_MUST_USE pk_result pk_sigv4_parse_authorization(const char *value, pk_sigv4_auth *out);
/* Is `name` (lowercase) in the semicolon list? */
bool pk_sigv4_signs(const pk_sigv4_auth *a, const char *name);
/* The single value of a header (case-insensitive name), or NULL when absent; *dup set when it appears twice. */
const char *pk_sigv4_header(const p11kms_sigv4_request *req, const char *name, bool *dup);
/* Parse an x-amz-date (yyyymmddThhmmssZ) to ms since the epoch; false when malformed. */
bool pk_sigv4_parse_amz_date(const char *s, int64_t *ms);
/*
 * The canonical request (method, canonical URI, canonical query, canonical
 * headers of the signed headers, signed headers, hex SHA-256 of the body).
 * normalize_path: remove "." and ".." segments and repeated slashes, and
 * encode the path again (every service but S3).
 */
PK_MUST_USE pk_result pk_sigv4_canonical_request(const p11kms_sigv4_request *req, const pk_sigv4_auth *a,
                                                 bool normalize_path, pk_buf *out);
/* "AWS4-HMAC-SHA256\nAMZDATE\nDATE/REGION/SERVICE/aws4_request\nhex(SHA-256(canonical request))". */
PK_MUST_USE pk_result pk_sigv4_string_to_sign(const pk_sigv4_auth *a, const char *amz_date, const pk_buf *canonical,
                                              pk_buf *out);

#endif
