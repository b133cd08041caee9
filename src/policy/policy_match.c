/* IAM wildcard matching and ARN segments (no allocation: used by evaluation). */
#include "config.h"

#include <string.h>

#include "policy/policy_impl.h"

static inline char fold(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/*
 * Iterative match with one backtrack point: on a mismatch after a '*', the
 * star absorbs one more character. That is complete for '*'/'?' patterns and
 * runs in O(plen * slen) at worst, with no recursion.
 */
bool pol_glob(const char *pat, size_t plen, const char *s, size_t slen, bool icase)
{
    size_t p = 0, i = 0, star_p = SIZE_MAX, star_i = 0;

    while (i < slen) {
        char c = icase ? fold(s[i]) : s[i];
        if (p < plen && pat[p] == '*') {
            star_p = p++;
            star_i = i;
        } else if (p < plen && (pat[p] == '?' || pat[p] == c)) {
            p++;
            i++;
        } else if (star_p != SIZE_MAX) {
            p = star_p + 1;
            i = ++star_i;
        } else {
            return false;
        }
    }
    while (p < plen && pat[p] == '*') p++;
    return p == plen;
}

bool pol_arn_split(const char *s, size_t len, pol_arn *out)
{
    size_t start = 0, n = 0;

    for (size_t i = 0; i < len && n < 5; i++) {
        if (s[i] != ':') continue;
        out->part[n] = s + start;
        out->len[n] = i - start;
        n++;
        start = i + 1;
    }
    if (n != 5) return false;
    out->part[5] = s + start;
    out->len[5] = len - start;
    return true;
}

/*
 * IAM checks each of the six ARN parts on its own, so a '*' in the region
 * never swallows a colon; only the resource part may contain colons.
 */
bool pol_arn_match(const pol_arn *pat, const pol_arn *subject)
{
    for (size_t k = 0; k < 6; k++) {
        if (!pol_glob(pat->part[k], pat->len[k], subject->part[k], subject->len[k], false)) return false;
    }
    return true;
}
