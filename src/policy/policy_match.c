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

static bool all_of(const char *s, size_t len, const char *set)
{
    for (size_t i = 0; i < len; i++)
        if (strchr(set, s[i]) == NULL) return false;
    return true;
}

/*
 * A caller is named as IAM names principals: arn:PARTITION:iam::ACCOUNT:RES
 * (or sts for assumed roles), with a 12-digit account and a printable
 * resource. Anything else could never match a policy's Principal, so it is
 * refused up front instead of being denied with a puzzling message.
 */
bool pk_principal_arn_valid(const char *s)
{
    pol_arn a;
    size_t len = strlen(s);
    if (!pol_arn_split(s, len, &a)) return false;
    if (a.len[0] != 3 || memcmp(a.part[0], "arn", 3) != 0) return false;
    if (a.len[1] == 0 || !all_of(a.part[1], a.len[1], "abcdefghijklmnopqrstuvwxyz-")) return false;
    if (!((a.len[2] == 3 && memcmp(a.part[2], "iam", 3) == 0) || (a.len[2] == 3 && memcmp(a.part[2], "sts", 3) == 0)))
        return false;
    if (a.len[3] != 0) return false; /* IAM and STS ARNs have no region */
    if (a.len[4] != 12 || !all_of(a.part[4], 12, "0123456789")) return false;
    if (a.len[5] == 0) return false;
    for (size_t i = 0; i < a.len[5]; i++) {
        unsigned char ch = (unsigned char)a.part[5][i];
        if (ch <= 0x20 || ch == 0x7f || ch == '*' || ch == '?') return false;
    }
    return true;
}
