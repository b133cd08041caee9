/*
 * Typed condition values: numbers, dates, IP networks, booleans. Policy
 * values are parsed once at compile time; request values at evaluation,
 * so none of these allocate.
 */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "policy/policy_impl.h"

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/*
 * Collect up to 18 significant digits as an integer and divide once by a
 * power of ten: with <= 15 digits both are exact doubles, so the result is
 * the correctly rounded value, the same double strtod gives, without
 * strtod's locale and its inf/nan/hex forms.
 */
bool pol_parse_number(const char *s, size_t len, double *out)
{
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
                                   1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
                                   1e21, 1e22};
    size_t i = 0, ndig = 0, frac = 0;
    bool neg = false, seen_dot = false;
    uint64_t mant = 0;
    double scale = 1.0, v;

    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    if (i >= len || !is_digit(s[i])) return false;
    for (; i < len; i++) {
        if (s[i] == '.' && !seen_dot) {
            seen_dot = true;
            if (i + 1 >= len || !is_digit(s[i + 1])) return false;
            continue;
        }
        if (!is_digit(s[i])) return false;
        if (ndig < 18) {
            mant = mant * 10 + (uint64_t)(s[i] - '0');
            if (mant != 0) ndig++;
            if (seen_dot) frac++;
        } else if (!seen_dot) {
            scale *= 10.0; /* digits past 18 in the integer part only scale */
        }
    }
    v = (double)mant * scale;
    while (frac > 22) {
        v /= 10.0;
        frac--;
    }
    v /= pow10[frac];
    *out = neg ? -v : v;
    return true;
}

static bool digits(const char *s, size_t len, size_t at, size_t n, int *out)
{
    int v = 0;
    if (at + n > len) return false;
    for (size_t i = at; i < at + n; i++) {
        if (!is_digit(s[i])) return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

static bool all_epoch_chars(const char *s, size_t len)
{
    if (len == 0 || len > 24) return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]) && s[i] != '.') return false;
    }
    return true;
}

static bool parse_epoch(const char *s, size_t len, int64_t *out_ms)
{
    int64_t sec = 0, ms = 0;
    size_t i = 0, f = 0;

    for (; i < len && s[i] != '.'; i++) {
        if (!is_digit(s[i]) || sec > INT64_MAX / 10000) return false;
        sec = sec * 10 + (s[i] - '0');
    }
    if (i == 0) return false;
    if (i < len) {
        if (++i >= len) return false;
        for (; i < len; i++, f++) {
            if (!is_digit(s[i])) return false;
            if (f < 3) ms = ms * 10 + (s[i] - '0');
        }
        for (; f < 3; f++) ms *= 10;
    }
    *out_ms = sec * 1000 + ms;
    return true;
}

/*
 * The W3C profile of ISO 8601 that AWS documents for Date operators:
 * YYYY-MM, YYYY-MM-DD, YYYY-MM-DDThh:mmTZD, YYYY-MM-DDThh:mm:ssTZD,
 * YYYY-MM-DDThh:mm:ss.sTZD, TZD = Z | +hh:mm | -hh:mm. A string of digits
 * (optionally with a fraction) is epoch seconds, as aws:EpochTime is; so a
 * bare "2024" is second 2024 of the epoch, not the year.
 */
bool pol_parse_date(const char *s, size_t len, int64_t *out_ms)
{
    int y, mo = 1, d = 1, h = 0, mi = 0, sec = 0, ms = 0, tzh = 0, tzm = 0;
    size_t i;
    int64_t days, total;

    if (all_epoch_chars(s, len)) return parse_epoch(s, len, out_ms);
    if (!digits(s, len, 0, 4, &y)) return false;
    i = 4;
    if (i < len) {
        if (s[i] != '-' || !digits(s, len, i + 1, 2, &mo)) return false;
        i += 3;
    } else {
        return false; /* bare YYYY is epoch seconds, handled above */
    }
    if (mo < 1 || mo > 12) return false;
    if (i < len) {
        if (s[i] != '-' || !digits(s, len, i + 1, 2, &d)) return false;
        i += 3;
    }
    if (d < 1 || d > days_in_month(y, mo)) return false;
    if (i < len) {
        int sign;
        if (s[i] != 'T' || !digits(s, len, i + 1, 2, &h) || i + 3 >= len || s[i + 3] != ':' ||
            !digits(s, len, i + 4, 2, &mi))
            return false;
        i += 6;
        if (i < len && s[i] == ':') {
            if (!digits(s, len, i + 1, 2, &sec)) return false;
            i += 3;
            if (i < len && s[i] == '.') {
                size_t f = 0;
                i++;
                if (i >= len || !is_digit(s[i])) return false;
                for (; i < len && is_digit(s[i]); i++, f++) {
                    if (f < 3) ms = ms * 10 + (s[i] - '0');
                }
                for (; f < 3; f++) ms *= 10;
            }
        }
        if (h > 23 || mi > 59 || sec > 59) return false;
        if (i >= len) return false; /* W3C: a time needs a zone designator */
        if (s[i] == 'Z') {
            i++;
        } else if (s[i] == '+' || s[i] == '-') {
            sign = s[i] == '+' ? 1 : -1;
            if (!digits(s, len, i + 1, 2, &tzh) || i + 3 >= len || s[i + 3] != ':' ||
                !digits(s, len, i + 4, 2, &tzm) || tzh > 23 || tzm > 59)
                return false;
            tzh *= sign;
            tzm *= sign;
            i += 6;
        } else {
            return false;
        }
    }
    if (i != len) return false;
    days = days_from_civil(y, mo, d);
    total = days * 86400 + h * 3600 + mi * 60 + sec - (tzh * 3600 + tzm * 60);
    *out_ms = total * 1000 + ms;
    return true;
}

void pol_format_date(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        if (cap) buf[0] = '\0';
    }
}

static bool parse_addr(const char *s, size_t len, pol_cidr *out)
{
    char tmp[64];

    if (len == 0 || len >= sizeof(tmp)) return false;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (memchr(tmp, ':', len) != NULL) {
        if (inet_pton(AF_INET6, tmp, out->addr) != 1) return false;
        out->family = 6;
        out->prefix = 128;
    } else {
        if (inet_pton(AF_INET, tmp, out->addr) != 1) return false;
        out->family = 4;
        out->prefix = 32;
    }
    return true;
}

bool pol_parse_ip(const char *s, size_t len, pol_cidr *out)
{
    return parse_addr(s, len, out);
}

/* A network's host bits are cleared so containment is a prefix compare. */
bool pol_parse_cidr(const char *s, size_t len, pol_cidr *out)
{
    const char *slash = memchr(s, '/', len);
    int prefix = 0;
    size_t plen;

    if (slash == NULL) return parse_addr(s, len, out);
    if (!parse_addr(s, (size_t)(slash - s), out)) return false;
    plen = len - (size_t)(slash - s) - 1;
    if (plen == 0 || plen > 3 || !digits(slash + 1, plen, 0, plen, &prefix)) return false;
    if (prefix > (out->family == 4 ? 32 : 128)) return false;
    out->prefix = (uint8_t)prefix;
    for (int bit = prefix; bit < (out->family == 4 ? 32 : 128); bit++) {
        out->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
    }
    return true;
}

bool pol_cidr_contains(const pol_cidr *net, const pol_cidr *ip)
{
    size_t full = net->prefix / 8u, rest = net->prefix % 8u;

    if (net->family != ip->family) return false;
    if (memcmp(net->addr, ip->addr, full) != 0) return false;
    if (rest == 0) return true;
    return ((net->addr[full] ^ ip->addr[full]) & (uint8_t)(0xFFu << (8 - rest))) == 0;
}

bool pol_parse_bool(const char *s, size_t len, bool *out)
{
    if (len == 4 && strncasecmp(s, "true", 4) == 0) {
        *out = true;
        return true;
    }
    if (len == 5 && strncasecmp(s, "false", 5) == 0) {
        *out = false;
        return true;
    }
    return false;
}

bool pk_policy_parse_time(const char *s, int64_t *out_ms)
{
    return s != NULL && pol_parse_date(s, strlen(s), out_ms);
}
