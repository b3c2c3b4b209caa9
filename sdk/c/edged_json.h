/*
 * edged_json.h - a pull tokenizer for whole JSON documents (RFC 8259), for
 * filters that read more than one field (edged_json_field in edged.h finds
 * one). Include after edged.h. Freestanding: no libc, no allocation.
 *
 * edged_json_next returns one token at a time: object and array starts and
 * ends, member names (EDGED_JSON_KEY), strings, numbers, true, false, null.
 * It checks the grammar as it goes (commas, colons, matching brackets,
 * string escapes, number syntax, nothing after the document) and refuses
 * nesting deeper than EDGED_JSON_MAX_DEPTH. Strings come back as written
 * between their quotes; edged_buf_json_unescape decodes them to UTF-8.
 */
#ifndef EDGED_JSON_H
#define EDGED_JSON_H

#ifndef EDGED_H
#error "include edged.h before edged_json.h"
#endif

#ifndef EDGED_JSON_MAX_DEPTH
#define EDGED_JSON_MAX_DEPTH 32
#endif
_Static_assert(EDGED_JSON_MAX_DEPTH <= 64, "nesting kinds are kept in 64 bits");

enum {
    EDGED_JSON_ERROR = -1,
    EDGED_JSON_EOF = 0,     /* the document is complete and nothing follows it */
    EDGED_JSON_OBJECT,
    EDGED_JSON_OBJECT_END,
    EDGED_JSON_ARRAY,
    EDGED_JSON_ARRAY_END,
    EDGED_JSON_KEY,         /* a member name; raw is its text between the quotes */
    EDGED_JSON_STRING,      /* raw is its text between the quotes, escapes as written */
    EDGED_JSON_NUMBER,      /* raw is the number as written; is_float when it has '.' or an exponent */
    EDGED_JSON_TRUE,
    EDGED_JSON_FALSE,
    EDGED_JSON_NULL,
};

typedef struct {
    int type;
    edged_str raw;
    int is_float;
    int has_escapes;
} edged_json_token;

enum { EDGED__J_VALUE, EDGED__J_VALUE_OR_END, EDGED__J_KEY, EDGED__J_KEY_OR_END, EDGED__J_AFTER, EDGED__J_DONE };

/* Plain data: copy it to look ahead (count an array's elements, find a
 * member) and carry on with the original. */
typedef struct {
    const unsigned char *p;
    const unsigned char *end;
    uint64_t kinds;     /* bit d set: the container at depth d is an object */
    int depth;
    int state;
    int error;
} edged_json_reader;

EDGED__API void edged_json_reader_init(edged_json_reader *j, edged_str text)
{
    j->p = (const unsigned char *)text.ptr;
    j->end = j->p + text.len;
    j->kinds = 0;
    j->depth = 0;
    j->state = EDGED__J_VALUE;
    j->error = 0;
}

static int edged__json_fail(edged_json_reader *j, edged_json_token *t)
{
    j->error = 1;
    t->type = EDGED_JSON_ERROR;
    return EDGED_JSON_ERROR;
}

static int edged__json_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* p after the opening quote: the closing quote, or 0. */
static const unsigned char *edged__json_string_end(const unsigned char *p, const unsigned char *end, int *escapes)
{
    *escapes = 0;
    while (p < end) {
        unsigned char c = *p;
        if (c == '"') return p;
        if (c < 0x20) return 0;
        if (c == '\\') {
            *escapes = 1;
            if (++p == end) return 0;
            c = *p;
            if (c == 'u') {
                if (end - p < 5) return 0;
                for (int k = 1; k <= 4; k++)
                    if (edged__json_hex(p[k]) < 0) return 0;
                p += 4;
            } else if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' && c != 'r' && c != 't') {
                return 0;
            }
        }
        p++;
    }
    return 0;
}

static const unsigned char *edged__json_number_end(const unsigned char *p, const unsigned char *end, int *is_float)
{
    *is_float = 0;
    if (p < end && *p == '-') p++;
    if (p == end) return 0;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (p < end && *p >= '0' && *p <= '9') p++;
    else return 0;
    if (p < end && *p == '.') {
        *is_float = 1;
        p++;
        if (p == end || *p < '0' || *p > '9') return 0;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *is_float = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p == end || *p < '0' || *p > '9') return 0;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    return p;
}

static int edged__json_literal(edged_json_reader *j, const char *word, uint32_t n)
{
    if ((uint32_t)(j->end - j->p) < n) return 0;
    for (uint32_t i = 0; i < n; i++)
        if (j->p[i] != (unsigned char)word[i]) return 0;
    j->p += n;
    return 1;
}

/* The next token. After the last one, EDGED_JSON_EOF once the rest of the
 * text is whitespace (else an error). */
EDGED__API int edged_json_next(edged_json_reader *j, edged_json_token *t)
{
    t->type = EDGED_JSON_ERROR;
    t->raw.ptr = 0;
    t->raw.len = 0;
    t->is_float = 0;
    t->has_escapes = 0;
    if (j->error) return EDGED_JSON_ERROR;
    for (;;) {
        while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
            j->p++;
        if (j->state == EDGED__J_DONE) {
            if (j->p != j->end) return edged__json_fail(j, t);
            return t->type = EDGED_JSON_EOF;
        }
        if (j->p == j->end) return edged__json_fail(j, t);
        unsigned char c = *j->p;
        int in_object = j->depth > 0 && ((j->kinds >> (j->depth - 1)) & 1);

        if (j->state == EDGED__J_AFTER) {
            if (c == ',') {
                j->p++;
                j->state = in_object ? EDGED__J_KEY : EDGED__J_VALUE;
                continue;
            }
            if (c != (in_object ? '}' : ']')) return edged__json_fail(j, t);
            goto close;
        }
        if ((j->state == EDGED__J_VALUE_OR_END && c == ']') || (j->state == EDGED__J_KEY_OR_END && c == '}'))
            goto close;

        if (j->state == EDGED__J_KEY || j->state == EDGED__J_KEY_OR_END) {
            if (c != '"') return edged__json_fail(j, t);
            const unsigned char *q = edged__json_string_end(j->p + 1, j->end, &t->has_escapes);
            if (!q) return edged__json_fail(j, t);
            t->raw.ptr = (const char *)j->p + 1;
            t->raw.len = (uint32_t)(q - j->p - 1);
            j->p = q + 1;
            while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
                j->p++;
            if (j->p == j->end || *j->p != ':') return edged__json_fail(j, t);
            j->p++;
            j->state = EDGED__J_VALUE;
            return t->type = EDGED_JSON_KEY;
        }

        /* a value */
        if (c == '{' || c == '[') {
            if (j->depth == EDGED_JSON_MAX_DEPTH) return edged__json_fail(j, t);
            if (c == '{') j->kinds |= (uint64_t)1 << j->depth;
            else j->kinds &= ~((uint64_t)1 << j->depth);
            j->depth++;
            j->p++;
            j->state = c == '{' ? EDGED__J_KEY_OR_END : EDGED__J_VALUE_OR_END;
            return t->type = c == '{' ? EDGED_JSON_OBJECT : EDGED_JSON_ARRAY;
        }
        if (c == '"') {
            const unsigned char *q = edged__json_string_end(j->p + 1, j->end, &t->has_escapes);
            if (!q) return edged__json_fail(j, t);
            t->raw.ptr = (const char *)j->p + 1;
            t->raw.len = (uint32_t)(q - j->p - 1);
            j->p = q + 1;
            t->type = EDGED_JSON_STRING;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            const unsigned char *q = edged__json_number_end(j->p, j->end, &t->is_float);
            if (!q) return edged__json_fail(j, t);
            t->raw.ptr = (const char *)j->p;
            t->raw.len = (uint32_t)(q - j->p);
            j->p = q;
            t->type = EDGED_JSON_NUMBER;
        } else if (edged__json_literal(j, "true", 4)) {
            t->type = EDGED_JSON_TRUE;
        } else if (edged__json_literal(j, "false", 5)) {
            t->type = EDGED_JSON_FALSE;
        } else if (edged__json_literal(j, "null", 4)) {
            t->type = EDGED_JSON_NULL;
        } else {
            return edged__json_fail(j, t);
        }
        /* A scalar must end at a delimiter: "12ab" or "truex" is not JSON. */
        if (j->p < j->end) {
            unsigned char d = *j->p;
            if (!(d == ',' || d == '}' || d == ']' || d == ' ' || d == '\t' || d == '\n' || d == '\r'))
                return edged__json_fail(j, t);
        }
        j->state = j->depth == 0 ? EDGED__J_DONE : EDGED__J_AFTER;
        return t->type;

    close:
        j->p++;
        j->depth--;
        j->state = j->depth == 0 ? EDGED__J_DONE : EDGED__J_AFTER;
        return t->type = in_object ? EDGED_JSON_OBJECT_END : EDGED_JSON_ARRAY_END;
    }
}

/* Skips one whole value whose first token was just read as t (nothing for
 * a scalar, up to the matching end for a container). 0, or -1. */
EDGED__API int edged_json_skip_rest(edged_json_reader *j, const edged_json_token *t)
{
    if (t->type != EDGED_JSON_OBJECT && t->type != EDGED_JSON_ARRAY) return j->error ? -1 : 0;
    int depth = j->depth - 1;
    edged_json_token u;
    while (j->depth > depth)
        if (edged_json_next(j, &u) == EDGED_JSON_ERROR) return -1;
    return 0;
}

/* The number of elements of the array, or members of the object, whose
 * start was just read: counted on a copy, j does not move. -1 if malformed. */
EDGED__API int64_t edged_json_count(const edged_json_reader *j)
{
    edged_json_reader c = *j;
    edged_json_token t;
    int64_t n = 0;
    for (;;) {
        int type = edged_json_next(&c, &t);
        if (type == EDGED_JSON_ARRAY_END || type == EDGED_JSON_OBJECT_END) return n;
        if (type == EDGED_JSON_KEY) type = edged_json_next(&c, &t);
        if (type == EDGED_JSON_ERROR || edged_json_skip_rest(&c, &t) != 0) return -1;
        n++;
    }
}

static void edged__utf8_put(edged_buf *b, uint32_t cp)
{
    char u[4];
    if (cp < 0x80) {
        edged_buf_char(b, (char)cp);
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 63));
        edged_buf_bytes(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 63));
        u[2] = (char)(0x80 | (cp & 63));
        edged_buf_bytes(b, u, 3);
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 63));
        u[2] = (char)(0x80 | ((cp >> 6) & 63));
        u[3] = (char)(0x80 | (cp & 63));
        edged_buf_bytes(b, u, 4);
    }
}

static uint32_t edged__json_u4(const unsigned char *p)
{
    return (uint32_t)(edged__json_hex(p[0]) << 12 | edged__json_hex(p[1]) << 8 | edged__json_hex(p[2]) << 4 |
                      edged__json_hex(p[3]));
}

/* Appends the text of a string token (raw, as the tokenizer returned it)
 * with its escapes decoded to UTF-8; \uD83D\uDE00 pairs become one code
 * point. -1 for a lone surrogate, or when b fails; bytes already in the
 * text are copied as they are (check them with edged_utf8_valid). */
EDGED__API int edged_buf_json_unescape(edged_buf *b, edged_str raw)
{
    const unsigned char *p = (const unsigned char *)raw.ptr, *end = p + raw.len;
    uint32_t start = b->len;
    while (p < end) {
        const unsigned char *q = p;
        while (q < end && *q != '\\')
            q++;
        edged_buf_bytes(b, p, (uint32_t)(q - p));
        if (q == end) break;
        unsigned char c = q[1];
        p = q + 2;
        switch (c) {
        case 'b': edged_buf_char(b, '\b'); break;
        case 'f': edged_buf_char(b, '\f'); break;
        case 'n': edged_buf_char(b, '\n'); break;
        case 'r': edged_buf_char(b, '\r'); break;
        case 't': edged_buf_char(b, '\t'); break;
        case 'u': {
            uint32_t cp = edged__json_u4(p);
            p += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff) goto bad;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u') goto bad;
                uint32_t lo = edged__json_u4(p + 2);
                if (lo < 0xdc00 || lo > 0xdfff) goto bad;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            edged__utf8_put(b, cp);
            break;
        }
        default: edged_buf_char(b, (char)c); break;     /* " \ / */
        }
    }
    if (!b->failed) return 0;
bad:
    b->len = start;
    return -1;
}

/* ---- exact float text ---------------------------------------------------- */

/* Doubles to and from decimal text with exact integer arithmetic, so that no
 * libc is needed: a double m * 2^e and the midpoints to its neighbours are
 * written out as exact decimal integers (at most 770 digits), and the
 * shortest digits that lie strictly between the midpoints are chosen; text
 * is read by correcting an estimate until it lies between the midpoints of
 * the result (ties to even). */

#define EDGED__DEC_MAX 800
#define EDGED__LIMBS 92

/* x * 2^s as an exact decimal integer times 10^min(s, 0); digits (no leading
 * zeros, "0" for zero) into out; returns the digit count. */
static uint32_t edged__dec_scaled(uint64_t x, int s, char *out)
{
    uint32_t limb[EDGED__LIMBS];    /* base 1e9, least significant first */
    uint32_t n = 0;
    while (x) {
        limb[n++] = (uint32_t)(x % 1000000000u);
        x /= 1000000000u;
    }
    int left = s < 0 ? -s : s;
    while (left > 0 && n > 0) {
        uint32_t mul;
        if (s > 0) {
            int k = left > 29 ? 29 : left;
            mul = (uint32_t)1 << k;
            left -= k;
        } else {
            int k = left > 13 ? 13 : left;
            mul = 1;
            for (int i = 0; i < k; i++)
                mul *= 5;
            left -= k;
        }
        uint64_t carry = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t t = (uint64_t)limb[i] * mul + carry;
            limb[i] = (uint32_t)(t % 1000000000u);
            carry = t / 1000000000u;
        }
        while (carry) {
            limb[n++] = (uint32_t)(carry % 1000000000u);
            carry /= 1000000000u;
        }
    }
    if (n == 0) {
        out[0] = '0';
        return 1;
    }
    uint32_t len = 0;
    for (uint32_t i = n; i-- > 0;) {
        char d[9];
        uint32_t v = limb[i];
        for (int j = 8; j >= 0; j--) {
            d[j] = (char)('0' + v % 10);
            v /= 10;
        }
        int skip = 0;
        if (i == n - 1)
            while (skip < 8 && d[skip] == '0') skip++;
        for (int j = skip; j < 9; j++)
            out[len++] = d[j];
    }
    return len;
}

/* Compares a * 10^ae with b * 10^be (digit strings without leading zeros,
 * "0" for zero): -1, 0, 1. */
static int edged__dec_cmp(const char *a, uint32_t an, int32_t ae, const char *b, uint32_t bn, int32_t be)
{
    int az = an == 1 && a[0] == '0', bz = bn == 1 && b[0] == '0';
    if (az || bz) return az && bz ? 0 : az ? -1 : 1;
    int32_t ao = (int32_t)an + ae, bo = (int32_t)bn + be;
    if (ao != bo) return ao < bo ? -1 : 1;
    uint32_t n = an > bn ? an : bn;
    for (uint32_t i = 0; i < n; i++) {
        char x = i < an ? a[i] : '0', y = i < bn ? b[i] : '0';
        if (x != y) return x < y ? -1 : 1;
    }
    return 0;
}

/* The midpoints between the positive finite double `bits` and its
 * neighbours, and the value itself, at the common scale 2^(e-2). */
static void edged__double_parts(uint64_t bits, uint64_t *lo4, uint64_t *v4, uint64_t *hi4, int *s)
{
    int be = (int)((bits >> 52) & 0x7ff);
    uint64_t m = bits & 0xfffffffffffffull;
    int e;
    if (be == 0) {
        e = -1074;
    } else {
        m |= (uint64_t)1 << 52;
        e = be - 1075;
    }
    *v4 = 4 * m;
    *hi4 = 4 * m + 2;
    /* Below a power of two the lower neighbour is half as far. */
    *lo4 = (m == (uint64_t)1 << 52 && be > 1) ? 4 * m - 1 : 4 * m - 2;
    *s = e - 2;
}

static char edged__dv[EDGED__DEC_MAX], edged__dl[EDGED__DEC_MAX], edged__dh[EDGED__DEC_MAX], edged__dc[EDGED__DEC_MAX];

/* v as the shortest JSON number that reads back to the same double, always
 * with a '.' or an exponent (1.0, 0.1, 1e+16, 5e-324): the form of Python's
 * repr. -1 for NaN and infinities (JSON has no text for them). */
EDGED__API int edged_buf_double(edged_buf *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    int neg = (int)(bits >> 63);
    bits &= ~((uint64_t)1 << 63);
    if (bits >= (uint64_t)0x7ff << 52) {
        b->failed = 1;
        return -1;
    }
    uint32_t start = b->len;
    if (neg) edged_buf_char(b, '-');
    if (bits == 0) {
        edged_buf_cstr(b, "0.0");
        goto out;
    }
    uint64_t lo4, v4, hi4;
    int s;
    edged__double_parts(bits, &lo4, &v4, &hi4, &s);
    int32_t ex = s < 0 ? s : 0;
    uint32_t vn = edged__dec_scaled(v4, s, edged__dv);
    uint32_t ln = edged__dec_scaled(lo4, s, edged__dl);
    uint32_t hn = edged__dec_scaled(hi4, s, edged__dh);
    uint32_t cn = 0;
    int32_t ce = 0;
    for (uint32_t p = 1; p <= 17 && p <= vn; p++) {
        /* The nearer of the p-digit prefix and the same rounded up first; on an exact
         * tie the one whose last digit is even, as Python's repr does. */
        int first_up = 0;
        if (p < vn && edged__dv[p] != '5') {
            first_up = edged__dv[p] > '5';
        } else if (p < vn) {
            int tie = 1;
            for (uint32_t k = p + 1; k < vn; k++)
                if (edged__dv[k] != '0') tie = 0;
            first_up = tie ? (edged__dv[p - 1] - '0') & 1 : 1;
        }
        for (int attempt = 0; attempt < 2; attempt++) {
            int up = attempt ? !first_up : first_up;
            memcpy(edged__dc, edged__dv, p);
            cn = p;
            ce = ex + (int32_t)(vn - p);
            if (up) {
                int32_t i = (int32_t)p - 1;
                while (i >= 0 && edged__dc[i] == '9')
                    edged__dc[i--] = '0';
                if (i >= 0) {
                    edged__dc[i]++;
                } else {
                    edged__dc[0] = '1';         /* 99 -> 100: one digit, one order up */
                    cn = 1;
                    ce += (int32_t)p;
                }
            }
            /* A midpoint itself reads back as v when v's mantissa is even. */
            int edge = (bits & 1) ? 0 : -1;
            if (edged__dec_cmp(edged__dc, cn, ce, edged__dl, ln, ex) > edge &&
                edged__dec_cmp(edged__dc, cn, ce, edged__dh, hn, ex) < -edge)
                goto found;
        }
    }
    /* Not reached for a double (17 digits always suffice); all digits then. */
    memcpy(edged__dc, edged__dv, vn);
    cn = vn;
    ce = ex;
found:
    while (cn > 1 && edged__dc[cn - 1] == '0') {
        cn--;
        ce++;
    }
    {
        int32_t x = (int32_t)cn - 1 + ce;      /* the value is d.ddd * 10^x */
        if (x >= -4 && x < 16) {
            if (x >= 0) {
                for (int32_t i = 0; i <= x; i++)
                    edged_buf_char(b, (uint32_t)i < cn ? edged__dc[i] : '0');
                edged_buf_char(b, '.');
                if ((uint32_t)x + 1 < cn) edged_buf_bytes(b, edged__dc + x + 1, cn - (uint32_t)x - 1);
                else edged_buf_char(b, '0');
            } else {
                edged_buf_cstr(b, "0.");
                for (int32_t i = 0; i < -x - 1; i++)
                    edged_buf_char(b, '0');
                edged_buf_bytes(b, edged__dc, cn);
            }
        } else {
            edged_buf_char(b, edged__dc[0]);
            if (cn > 1) {
                edged_buf_char(b, '.');
                edged_buf_bytes(b, edged__dc + 1, cn - 1);
            }
            edged_buf_char(b, 'e');
            edged_buf_char(b, x < 0 ? '-' : '+');
            if (x < 0) x = -x;
            if (x < 10) edged_buf_char(b, '0');
            edged_buf_int(b, x);
        }
    }
out:
    if (b->failed) {
        if (b->len > start) b->len = start;
        return -1;
    }
    return 0;
}

/* A JSON number's text as the nearest double (ties to even), exactly as a
 * correct strtod would. 0 and *out set, or -1 for text that is not a JSON
 * number or a value beyond the double range (infinity). */
EDGED__API int edged_parse_double(edged_str text, double *out)
{
    const unsigned char *p = (const unsigned char *)text.ptr, *end = p + text.len;
    int is_float;
    if (!p || edged__json_number_end(p, end, &is_float) != end) return -1;
    int neg = *p == '-';
    if (neg) p++;
    /* significant digits into edged__dc, value = digits * 10^k */
    uint32_t n = 0;
    int32_t k = 0;
    int dropped = 0;
    int frac = 0;
    for (; p < end && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            frac = 1;
            continue;
        }
        if (n == 0 && *p == '0') {
            if (frac) k--;
            continue;
        }
        if (n < EDGED__DEC_MAX - 1) {
            edged__dc[n++] = (char)*p;
            if (frac) k--;
        } else {
            if (!frac) k++;
            if (*p != '0') dropped = 1;     /* beyond 799 digits: only a tie-break hint */
        }
    }
    if (p < end) {
        int eneg = 0;
        int32_t e = 0;
        p++;
        if (*p == '+' || *p == '-') eneg = *p++ == '-';
        for (; p < end; p++)
            if (e < 100000) e = e * 10 + (*p - '0');
        k += eneg ? -e : e;
    }
    if (dropped && n < EDGED__DEC_MAX) {
        edged__dc[n++] = '1';               /* a sticky digit: above any tie */
        k--;
    }
    double v = 0;
    if (n == 0 || (int32_t)n + k < -330) {
        *out = neg ? -0.0 : 0.0;
        return 0;
    }
    if ((int32_t)n + k > 310) return -1;
    /* estimate from the first 19 digits */
    {
        uint64_t m = 0;
        uint32_t used = n < 19 ? n : 19;
        for (uint32_t i = 0; i < used; i++)
            m = m * 10 + (uint64_t)(edged__dc[i] - '0');
        int32_t e10 = k + (int32_t)(n - used);
        v = (double)m;
        while (e10 > 0) {
            int step = e10 > 22 ? 22 : e10;
            v *= edged__pow10[step];
            e10 -= step;
        }
        while (e10 < 0) {
            int step = e10 < -22 ? 22 : -e10;
            v /= edged__pow10[step];
            e10 += step;
        }
    }
    uint64_t bits;
    if (__builtin_isinf(v)) v = 1.7976931348623157e308;
    memcpy(&bits, &v, 8);
    if (bits == 0) bits = 1;
    for (int round = 0; round < 64; round++) {
        uint64_t lo4, v4, hi4;
        int s;
        edged__double_parts(bits, &lo4, &v4, &hi4, &s);
        int32_t ex = s < 0 ? s : 0;
        uint32_t ln = edged__dec_scaled(lo4, s, edged__dl);
        uint32_t hn = edged__dec_scaled(hi4, s, edged__dh);
        int cl = edged__dec_cmp(edged__dc, n, k, edged__dl, ln, ex);
        int ch = edged__dec_cmp(edged__dc, n, k, edged__dh, hn, ex);
        if (cl < 0 || (cl == 0 && (bits & 1))) {
            if (bits == 1) {
                bits = 0;
                break;
            }
            bits--;
        } else if (ch > 0 || (ch == 0 && (bits & 1))) {
            bits++;
            if (bits >= (uint64_t)0x7ff << 52) return -1;
        } else {
            break;
        }
    }
    memcpy(&v, &bits, 8);
    *out = neg ? -v : v;
    return 0;
}

#endif /* EDGED_JSON_H */
