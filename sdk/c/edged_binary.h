/*
 * edged_binary.h - CBOR (RFC 8949) and MessagePack readers and writers for
 * edged filters, written from the two specifications.
 *
 * Include after edged.h. Freestanding like edged.h: no libc, no allocation.
 * docs/binary-payloads.md describes the API, the limits and why the SDK has
 * its own reader rather than a library (none of the C CBOR or MessagePack
 * libraries builds for wasm32 without libc).
 *
 * Reading is pull-style: edged_cbor_next / edged_msgpack_next return one item
 * at a time (type, value, length), containers as a start item, their
 * elements, then an EDGED_BIN_END item, for definite and CBOR indefinite
 * lengths alike. Nesting deeper than EDGED_BIN_MAX_DEPTH is refused.
 * Writing appends to an edged_buf: a failed append sets `failed`, so a whole
 * payload can be written unchecked and tested once.
 */
#ifndef EDGED_BINARY_H
#define EDGED_BINARY_H

#ifndef EDGED_H
#error "include edged.h before edged_binary.h"
#endif

/* Containers, tags and indefinite-length strings each count one level. */
#ifndef EDGED_BIN_MAX_DEPTH
#define EDGED_BIN_MAX_DEPTH 32
#endif

/* Item types. */
enum {
    EDGED_BIN_ERROR = -1,   /* malformed, truncated or too deep: see reader.error */
    EDGED_BIN_EOF = 0,      /* the top-level item is complete */
    EDGED_BIN_UINT,         /* value */
    EDGED_BIN_NINT,         /* the integer -1 - value */
    EDGED_BIN_BYTES,        /* ptr/len; indefinite: definite chunks follow, then END */
    EDGED_BIN_TEXT,         /* same; the bytes are not checked for UTF-8 */
    EDGED_BIN_ARRAY,        /* value elements (indefinite: unknown), then END */
    EDGED_BIN_MAP,          /* value pairs: key, value, key, value..., then END */
    EDGED_BIN_TAG,          /* CBOR tag number `value`; its one content item follows */
    EDGED_BIN_FLOAT,        /* f, from float_bytes 2, 4 or 8 */
    EDGED_BIN_FALSE,
    EDGED_BIN_TRUE,
    EDGED_BIN_NULL,         /* CBOR null, MessagePack nil */
    EDGED_BIN_UNDEFINED,    /* CBOR only */
    EDGED_BIN_SIMPLE,       /* CBOR simple value `value` (0..19, 32..255) */
    EDGED_BIN_EXT,          /* MessagePack ext: ext_type, ptr/len */
    EDGED_BIN_END,          /* end of the innermost array, map or string chunks */
};

/* reader.error */
enum {
    EDGED_BIN_OK = 0,
    EDGED_BIN_TRUNCATED,    /* the payload ends inside an item */
    EDGED_BIN_INVALID,      /* bytes no item can start with, or a misplaced break */
    EDGED_BIN_TOO_DEEP,     /* more than EDGED_BIN_MAX_DEPTH levels */
    EDGED_BIN_TRAILING,     /* bytes after the top-level item (edged_bin_finish) */
};

typedef struct {
    int type;
    uint64_t value;
    double f;
    int float_bytes;
    int indefinite;
    int ext_type;
    const unsigned char *ptr;
    uint32_t len;
} edged_bin_item;

typedef struct {
    unsigned char kind;         /* EDGED_BIN_ARRAY, _MAP, _TAG, _BYTES, _TEXT */
    unsigned char indefinite;
    uint64_t left;              /* definite: items still to come; indefinite: items seen */
} edged__bin_frame;

/* Plain data: copy it to look ahead (e.g. at a map's keys) and carry on with
 * the original. */
typedef struct {
    const unsigned char *ptr;
    uint32_t len;
    uint32_t pos;
    int depth;
    int error;
    int done;
    edged__bin_frame stack[EDGED_BIN_MAX_DEPTH];
} edged_bin_reader;

EDGED__API void edged_bin_reader_init(edged_bin_reader *r, edged_str data)
{
    r->ptr = (const unsigned char *)data.ptr;
    r->len = data.len;
    r->pos = 0;
    r->depth = 0;
    r->error = EDGED_BIN_OK;
    r->done = 0;
}

static int edged__bin_fail(edged_bin_reader *r, int error)
{
    if (!r->error) r->error = error;
    return EDGED_BIN_ERROR;
}

/* An item (a scalar, or a container at its END) is complete: tags around it
 * are complete too, and the enclosing container has one item fewer to go. */
static void edged__bin_done(edged_bin_reader *r)
{
    while (r->depth > 0) {
        edged__bin_frame *f = &r->stack[r->depth - 1];
        if (f->kind == EDGED_BIN_TAG) {
            r->depth--;
            continue;
        }
        if (f->indefinite) f->left++;
        else f->left--;
        return;
    }
    r->done = 1;
}

static int edged__bin_push(edged_bin_reader *r, int kind, int indefinite, uint64_t left)
{
    if (r->depth == EDGED_BIN_MAX_DEPTH) return edged__bin_fail(r, EDGED_BIN_TOO_DEEP);
    edged__bin_frame *f = &r->stack[r->depth++];
    f->kind = (unsigned char)kind;
    f->indefinite = (unsigned char)indefinite;
    f->left = left;
    return kind;
}

static int edged__bin_be(edged_bin_reader *r, uint32_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n > r->len - r->pos) return -1;
    for (uint32_t i = 0; i < n; i++)
        v = (v << 8) | r->ptr[r->pos + i];
    r->pos += n;
    *out = v;
    return 0;
}

/* A definite container whose items are all read ends here. */
static int edged__bin_end_of_definite(edged_bin_reader *r, edged_bin_item *it)
{
    if (r->depth > 0) {
        edged__bin_frame *f = &r->stack[r->depth - 1];
        if (!f->indefinite && f->kind != EDGED_BIN_TAG && f->left == 0) {
            r->depth--;
            edged__bin_done(r);
            it->type = EDGED_BIN_END;
            return 1;
        }
    }
    return 0;
}

static int edged__bin_payload(edged_bin_reader *r, edged_bin_item *it, uint64_t n)
{
    if (n > r->len - r->pos) return edged__bin_fail(r, EDGED_BIN_TRUNCATED);
    it->ptr = r->ptr + r->pos;
    it->len = (uint32_t)n;
    r->pos += (uint32_t)n;
    return 0;
}

static double edged__bin_bits_to_double(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

/* IEEE 754 binary16 as a double: every half value is exact in a double. */
EDGED__API double edged_half_to_double(uint16_t h)
{
    uint64_t sign = (uint64_t)(h >> 15) << 63;
    int e = (h >> 10) & 31;
    uint64_t m = h & 0x3ffu;
    double v;
    if (e == 0) {
        v = (double)m * 0x1p-24;            /* zero and subnormals */
        return sign ? -v : v;
    }
    if (e == 31)
        return edged__bin_bits_to_double(sign | ((uint64_t)0x7ff << 52) | (m << 42));
    return edged__bin_bits_to_double(sign | ((uint64_t)(e - 15 + 1023) << 52) | (m << 42));
}

static double edged__bin_f32(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, 4);
    return (double)f;
}

/* The next CBOR item. */
EDGED__API int edged_cbor_next(edged_bin_reader *r, edged_bin_item *it)
{
    it->type = EDGED_BIN_ERROR;
    it->value = 0;
    it->f = 0;
    it->float_bytes = 0;
    it->indefinite = 0;
    it->ext_type = 0;
    it->ptr = 0;
    it->len = 0;
    if (r->error) return EDGED_BIN_ERROR;
    if (r->done) return it->type = EDGED_BIN_EOF;
    if (edged__bin_end_of_definite(r, it)) return EDGED_BIN_END;
    if (r->pos >= r->len) return edged__bin_fail(r, EDGED_BIN_TRUNCATED);

    unsigned char b = r->ptr[r->pos++];
    int major = b >> 5, ai = b & 31;
    edged__bin_frame *top = r->depth > 0 ? &r->stack[r->depth - 1] : 0;
    if (top && top->indefinite) {
        if (b == 0xff) {
            if (top->kind == EDGED_BIN_MAP && (top->left & 1)) return edged__bin_fail(r, EDGED_BIN_INVALID);
            r->depth--;
            edged__bin_done(r);
            return it->type = EDGED_BIN_END;
        }
        /* Chunks of an indefinite string are definite strings of its own type. */
        if (top->kind == EDGED_BIN_BYTES && (major != 2 || ai == 31)) return edged__bin_fail(r, EDGED_BIN_INVALID);
        if (top->kind == EDGED_BIN_TEXT && (major != 3 || ai == 31)) return edged__bin_fail(r, EDGED_BIN_INVALID);
    }

    uint64_t arg = (uint64_t)ai;
    if (ai >= 24 && ai <= 27) {
        if (edged__bin_be(r, 1u << (ai - 24), &arg) != 0) return edged__bin_fail(r, EDGED_BIN_TRUNCATED);
    } else if (ai >= 28 && ai <= 30) {
        return edged__bin_fail(r, EDGED_BIN_INVALID);
    } else if (ai == 31 && (major < 2 || major == 6 || major == 7)) {
        return edged__bin_fail(r, EDGED_BIN_INVALID);     /* includes a break outside */
    }
    int indefinite = ai == 31;
    uint32_t rest = r->len - r->pos;

    switch (major) {
    case 0:
    case 1:
        it->type = major == 0 ? EDGED_BIN_UINT : EDGED_BIN_NINT;
        it->value = arg;
        break;
    case 2:
    case 3:
        it->type = major == 2 ? EDGED_BIN_BYTES : EDGED_BIN_TEXT;
        if (indefinite) {
            it->indefinite = 1;
            if (edged__bin_push(r, it->type, 1, 0) < 0) return EDGED_BIN_ERROR;
            return it->type;
        }
        if (edged__bin_payload(r, it, arg) != 0) return EDGED_BIN_ERROR;
        it->value = arg;
        break;
    case 4:
    case 5:
        it->type = major == 4 ? EDGED_BIN_ARRAY : EDGED_BIN_MAP;
        it->indefinite = indefinite;
        it->value = indefinite ? 0 : arg;
        /* Every item takes at least a byte: a count beyond what is left is a
         * truncation, and refusing it here keeps 2 * pairs from wrapping. */
        if (!indefinite && (major == 4 ? arg > rest : arg > rest / 2))
            return edged__bin_fail(r, EDGED_BIN_TRUNCATED);
        if (edged__bin_push(r, it->type, indefinite, major == 4 ? arg : 2 * arg) < 0) return EDGED_BIN_ERROR;
        return it->type;
    case 6:
        it->type = EDGED_BIN_TAG;
        it->value = arg;
        if (edged__bin_push(r, EDGED_BIN_TAG, 0, 1) < 0) return EDGED_BIN_ERROR;
        return EDGED_BIN_TAG;
    default:
        if (ai < 20) {
            it->type = EDGED_BIN_SIMPLE;
            it->value = (uint64_t)ai;
        } else if (ai <= 23) {
            static const int kinds[4] = { EDGED_BIN_FALSE, EDGED_BIN_TRUE, EDGED_BIN_NULL, EDGED_BIN_UNDEFINED };
            it->type = kinds[ai - 20];
        } else if (ai == 24) {
            if (arg < 32) return edged__bin_fail(r, EDGED_BIN_INVALID);  /* RFC 8949 3.3 */
            it->type = EDGED_BIN_SIMPLE;
            it->value = arg;
        } else {
            it->type = EDGED_BIN_FLOAT;
            it->float_bytes = 1 << (ai - 24);
            if (ai == 25) it->f = edged_half_to_double((uint16_t)arg);
            else if (ai == 26) it->f = edged__bin_f32((uint32_t)arg);
            else it->f = edged__bin_bits_to_double(arg);
        }
        break;
    }
    edged__bin_done(r);
    return it->type;
}

/* The next MessagePack item. */
EDGED__API int edged_msgpack_next(edged_bin_reader *r, edged_bin_item *it)
{
    it->type = EDGED_BIN_ERROR;
    it->value = 0;
    it->f = 0;
    it->float_bytes = 0;
    it->indefinite = 0;
    it->ext_type = 0;
    it->ptr = 0;
    it->len = 0;
    if (r->error) return EDGED_BIN_ERROR;
    if (r->done) return it->type = EDGED_BIN_EOF;
    if (edged__bin_end_of_definite(r, it)) return EDGED_BIN_END;
    if (r->pos >= r->len) return edged__bin_fail(r, EDGED_BIN_TRUNCATED);

    unsigned char b = r->ptr[r->pos++];
    uint64_t n = 0;
    int container = 0;
    if (b <= 0x7f) {
        it->type = EDGED_BIN_UINT;
        it->value = b;
    } else if (b <= 0x8f) {
        it->type = EDGED_BIN_MAP;
        n = b & 15;
        container = 1;
    } else if (b <= 0x9f) {
        it->type = EDGED_BIN_ARRAY;
        n = b & 15;
        container = 1;
    } else if (b <= 0xbf) {
        it->type = EDGED_BIN_TEXT;
        if (edged__bin_payload(r, it, b & 31) != 0) return EDGED_BIN_ERROR;
    } else if (b >= 0xe0) {
        it->type = EDGED_BIN_NINT;
        it->value = (uint64_t)(0xff - b);   /* -1 - value == (int8_t)b */
    } else {
        switch (b) {
        case 0xc0: it->type = EDGED_BIN_NULL; break;
        case 0xc2: it->type = EDGED_BIN_FALSE; break;
        case 0xc3: it->type = EDGED_BIN_TRUE; break;
        case 0xc4: case 0xc5: case 0xc6:
        case 0xd9: case 0xda: case 0xdb: {
            int text = b >= 0xd9;
            uint32_t width = 1u << (text ? b - 0xd9 : b - 0xc4);
            if (edged__bin_be(r, width, &n) != 0) return edged__bin_fail(r, EDGED_BIN_TRUNCATED);
            it->type = text ? EDGED_BIN_TEXT : EDGED_BIN_BYTES;
            if (edged__bin_payload(r, it, n) != 0) return EDGED_BIN_ERROR;
            break;
        }
        case 0xc7: case 0xc8: case 0xc9:
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: {
            uint64_t t;
            if (b <= 0xc9) {
                if (edged__bin_be(r, 1u << (b - 0xc7), &n) != 0) return edged__bin_fail(r, EDGED_BIN_TRUNCATED);
            } else {
                n = (uint64_t)1 << (b - 0xd4);
            }
            if (edged__bin_be(r, 1, &t) != 0) return edged__bin_fail(r, EDGED_BIN_TRUNCATED);
            it->type = EDGED_BIN_EXT;
            it->ext_type = (int)(signed char)(unsigned char)t;
            if (edged__bin_payload(r, it, n) != 0) return EDGED_BIN_ERROR;
            break;
        }
        case 0xca: case 0xcb: {
            uint32_t width = b == 0xca ? 4 : 8;
            if (edged__bin_be(r, width, &n) != 0) return edged__bin_fail(r, EDGED_BIN_TRUNCATED);
            it->type = EDGED_BIN_FLOAT;
            it->float_bytes = (int)width;
            it->f = width == 4 ? edged__bin_f32((uint32_t)n) : edged__bin_bits_to_double(n);
            break;
        }
        case 0xcc: case 0xcd: case 0xce: case 0xcf:
            if (edged__bin_be(r, 1u << (b - 0xcc), &n) != 0) return edged__bin_fail(r, EDGED_BIN_TRUNCATED);
            it->type = EDGED_BIN_UINT;
            it->value = n;
            break;
        case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
            uint32_t width = 1u << (b - 0xd0);
            if (edged__bin_be(r, width, &n) != 0) return edged__bin_fail(r, EDGED_BIN_TRUNCATED);
            if (width < 8 && (n >> (8 * width - 1))) n |= ~(uint64_t)0 << (8 * width);  /* sign-extend */
            if (n >> 63) {
                it->type = EDGED_BIN_NINT;
                it->value = ~n;             /* -1 - v for v < 0 */
            } else {
                it->type = EDGED_BIN_UINT;
                it->value = n;
            }
            break;
        }
        case 0xdc: case 0xdd: case 0xde: case 0xdf:
            if (edged__bin_be(r, (b & 1) ? 4 : 2, &n) != 0) return edged__bin_fail(r, EDGED_BIN_TRUNCATED);
            it->type = b <= 0xdd ? EDGED_BIN_ARRAY : EDGED_BIN_MAP;
            container = 1;
            break;
        default:    /* 0xc1 is never used */
            return edged__bin_fail(r, EDGED_BIN_INVALID);
        }
    }
    if (it->type == EDGED_BIN_TEXT || it->type == EDGED_BIN_BYTES) it->value = it->len;
    if (container) {
        uint32_t rest = r->len - r->pos;
        it->value = n;
        if (it->type == EDGED_BIN_ARRAY ? n > rest : n > rest / 2) return edged__bin_fail(r, EDGED_BIN_TRUNCATED);
        if (edged__bin_push(r, it->type, 0, it->type == EDGED_BIN_ARRAY ? n : 2 * n) < 0) return EDGED_BIN_ERROR;
        return it->type;
    }
    edged__bin_done(r);
    return it->type;
}

typedef int (*edged_bin_next_fn)(edged_bin_reader *, edged_bin_item *);

/* Skips the rest of an item whose first item was just read at `depth`
 * (r->depth before that read): a container to its END, a tag with its
 * content, an indefinite string with its chunks. 0, or -1 on an error. */
EDGED__API int edged_bin_skip_rest(edged_bin_reader *r, int depth, edged_bin_next_fn next)
{
    edged_bin_item it;
    while (r->depth > depth)
        if (next(r, &it) == EDGED_BIN_ERROR) return -1;
    return r->error ? -1 : 0;
}

/* Skips one whole item. Returns the type of its first item (EDGED_BIN_END
 * when the enclosing container ends instead), or EDGED_BIN_ERROR. */
EDGED__API int edged_bin_skip(edged_bin_reader *r, edged_bin_next_fn next)
{
    edged_bin_item it;
    int depth = r->depth;
    int t = next(r, &it);
    if (t == EDGED_BIN_ERROR || t == EDGED_BIN_END || t == EDGED_BIN_EOF) return t;
    return edged_bin_skip_rest(r, depth, next) == 0 ? t : EDGED_BIN_ERROR;
}

/* 0 when exactly one complete top-level item was read and nothing follows
 * it; otherwise the error (EDGED_BIN_TRAILING for bytes after it). */
EDGED__API int edged_bin_finish(edged_bin_reader *r)
{
    if (r->error) return r->error;
    if (!r->done) return EDGED_BIN_TRUNCATED;
    if (r->pos != r->len) return r->error = EDGED_BIN_TRAILING;
    return 0;
}

EDGED__API const char *edged_bin_error_text(int error)
{
    switch (error) {
    case EDGED_BIN_OK: return "ok";
    case EDGED_BIN_TRUNCATED: return "truncated";
    case EDGED_BIN_INVALID: return "malformed";
    case EDGED_BIN_TOO_DEEP: return "nested too deep";
    case EDGED_BIN_TRAILING: return "bytes after the item";
    default: return "error";
    }
}

/* ---- UTF-8 and base64 -------------------------------------------------- */

/* 1 when s is well-formed UTF-8 (no overlong forms, no surrogates, nothing
 * above U+10FFFF). */
EDGED__API int edged_utf8_valid(const unsigned char *s, uint32_t n)
{
    uint32_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        uint32_t need;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) need = 1;
        else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else {
            return 0;
        }
        if (need > n - i - 1) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (uint32_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xc0) != 0x80) return 0;
        i += need + 1;
    }
    return 1;
}

static const char edged__b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard alphabet, padded (RFC 4648 section 4). */
EDGED__API int edged_buf_base64(edged_buf *b, const unsigned char *s, uint32_t n)
{
    uint32_t start = b->len;
    for (uint32_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n) v |= s[i + 2];
        char q[4] = { edged__b64[v >> 18], edged__b64[(v >> 12) & 63],
                      i + 1 < n ? edged__b64[(v >> 6) & 63] : '=',
                      i + 2 < n ? edged__b64[v & 63] : '=' };
        edged_buf_bytes(b, q, 4);
    }
    if (b->failed) {
        if (b->len > start) b->len = start;
        return -1;
    }
    return 0;
}

static int edged__b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes standard, padded base64 (no whitespace) and appends the bytes.
 * -1 for anything else; b->failed only when the bytes do not fit. */
EDGED__API int edged_buf_unbase64(edged_buf *b, edged_str text)
{
    const unsigned char *s = (const unsigned char *)text.ptr;
    uint32_t n = text.len, start = b->len;
    if (n % 4) return -1;
    for (uint32_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else {
                if (pad) {
                    b->len = start;
                    return -1;
                }
                v[k] = edged__b64_value(s[i + k]);
                if (v[k] < 0) {
                    b->len = start;
                    return -1;
                }
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        char out[3] = { (char)(w >> 16), (char)(w >> 8), (char)w };
        if (edged_buf_bytes(b, out, (uint32_t)(3 - pad)) != 0) return -1;
    }
    return 0;
}

/* ---- big integers in decimal ------------------------------------------- */

/* The decimal text of the big-endian unsigned integer mag[0..n), plus one
 * when add_one is set (CBOR tag 3 holds -1 - n), with a '-' first when
 * negative. `scratch` needs n / 4 + 2 words. 0, or -1 (b->failed set, or
 * scratch too small). */
EDGED__API int edged_buf_bignum(edged_buf *b, const unsigned char *mag, uint32_t n, int add_one,
                                int negative, uint32_t *scratch, uint32_t scratch_words)
{
    uint32_t limbs = 0;     /* base 1e9, least significant first */
    if (scratch_words < n / 4 + 2) {
        b->failed = 1;
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t carry = mag[i];
        for (uint32_t k = 0; k < limbs; k++) {
            uint64_t t = (uint64_t)scratch[k] * 256 + carry;
            scratch[k] = (uint32_t)(t % 1000000000u);
            carry = t / 1000000000u;
        }
        while (carry) {
            scratch[limbs++] = (uint32_t)(carry % 1000000000u);
            carry /= 1000000000u;
        }
    }
    if (add_one) {
        uint32_t k = 0;
        for (;; k++) {
            if (k == limbs) scratch[limbs++] = 0;
            if (++scratch[k] < 1000000000u) break;
            scratch[k] = 0;
        }
    }
    uint32_t start = b->len;
    if (negative && limbs) edged_buf_char(b, '-');
    if (limbs == 0) edged_buf_char(b, '0');
    for (uint32_t k = limbs; k-- > 0;) {
        char d[9];
        uint32_t v = scratch[k];
        for (int j = 8; j >= 0; j--) {
            d[j] = (char)('0' + v % 10);
            v /= 10;
        }
        int skip = 0;
        if (k == limbs - 1)
            while (skip < 8 && d[skip] == '0') skip++;
        edged_buf_bytes(b, d + skip, (uint32_t)(9 - skip));
    }
    if (b->failed) {
        if (b->len > start) b->len = start;
        return -1;
    }
    return 0;
}

/* Any 65-bit integer -2^64 .. 2^64-1 as an item's decimal text. */
EDGED__API int edged_buf_bin_int(edged_buf *b, const edged_bin_item *it)
{
    unsigned char mag[8];
    for (int i = 0; i < 8; i++)
        mag[i] = (unsigned char)(it->value >> (56 - 8 * i));
    uint32_t scratch[4];
    int neg = it->type == EDGED_BIN_NINT;
    return edged_buf_bignum(b, mag, 8, neg, neg, scratch, 4);
}

/* ---- CBOR writer ------------------------------------------------------- */

/* An item head in its shortest form (RFC 8949 4.2.1, preferred serialization). */
EDGED__API int edged_cbor_put_head(edged_buf *b, int major, uint64_t arg)
{
    unsigned char h[9];
    uint32_t n;
    unsigned char m = (unsigned char)(major << 5);
    if (arg < 24) {
        h[0] = (unsigned char)(m | arg);
        n = 1;
    } else {
        int w = arg <= 0xff ? 0 : arg <= 0xffff ? 1 : arg <= 0xffffffffu ? 2 : 3;
        uint32_t bytes = 1u << w;
        h[0] = (unsigned char)(m | (24 + w));
        for (uint32_t i = 0; i < bytes; i++)
            h[1 + i] = (unsigned char)(arg >> (8 * (bytes - 1 - i)));
        n = 1 + bytes;
    }
    return edged_buf_bytes(b, h, n);
}

EDGED__API int edged_cbor_put_uint(edged_buf *b, uint64_t v) { return edged_cbor_put_head(b, 0, v); }
/* The integer -1 - v. */
EDGED__API int edged_cbor_put_nint(edged_buf *b, uint64_t v) { return edged_cbor_put_head(b, 1, v); }
EDGED__API int edged_cbor_put_int(edged_buf *b, int64_t v)
{
    return v < 0 ? edged_cbor_put_head(b, 1, ~(uint64_t)v) : edged_cbor_put_head(b, 0, (uint64_t)v);
}

static int edged__cbor_string(edged_buf *b, int major, const void *p, uint32_t n)
{
    uint32_t start = b->len;
    edged_cbor_put_head(b, major, n);
    edged_buf_bytes(b, p, n);
    if (b->failed) {
        if (b->len > start) b->len = start;
        return -1;
    }
    return 0;
}

EDGED__API int edged_cbor_put_bytes(edged_buf *b, const void *p, uint32_t n) { return edged__cbor_string(b, 2, p, n); }
EDGED__API int edged_cbor_put_text(edged_buf *b, edged_str s) { return edged__cbor_string(b, 3, s.ptr, s.len); }
EDGED__API int edged_cbor_put_array(edged_buf *b, uint64_t n) { return edged_cbor_put_head(b, 4, n); }
EDGED__API int edged_cbor_put_map(edged_buf *b, uint64_t pairs) { return edged_cbor_put_head(b, 5, pairs); }
EDGED__API int edged_cbor_put_tag(edged_buf *b, uint64_t tag) { return edged_cbor_put_head(b, 6, tag); }
EDGED__API int edged_cbor_put_bool(edged_buf *b, int v) { return edged_buf_char(b, (char)(v ? 0xf5 : 0xf4)); }
EDGED__API int edged_cbor_put_null(edged_buf *b) { return edged_buf_char(b, (char)0xf6); }
EDGED__API int edged_cbor_put_undefined(edged_buf *b) { return edged_buf_char(b, (char)0xf7); }
/* Indefinite-length array (4), map (5), byte (2) or text (3) string; close
 * it with edged_cbor_put_break. */
EDGED__API int edged_cbor_put_indefinite(edged_buf *b, int major) { return edged_buf_char(b, (char)((major << 5) | 31)); }
EDGED__API int edged_cbor_put_break(edged_buf *b) { return edged_buf_char(b, (char)0xff); }

/* Simple values 0..19 and 32..255 (20..23 are false/true/null/undefined,
 * 24..31 are reserved). */
EDGED__API int edged_cbor_put_simple(edged_buf *b, uint32_t v)
{
    if (v < 20) return edged_buf_char(b, (char)(0xe0 | v));
    if (v < 32 || v > 255) {
        b->failed = 1;
        return -1;
    }
    char s[2] = { (char)0xf8, (char)v };
    return edged_buf_bytes(b, s, 2);
}

/* Always the 9-byte double form. */
EDGED__API int edged_cbor_put_float64(edged_buf *b, double v)
{
    uint64_t bits;
    char s[9];
    memcpy(&bits, &v, 8);
    s[0] = (char)0xfb;
    for (int i = 0; i < 8; i++)
        s[1 + i] = (char)(bits >> (56 - 8 * i));
    return edged_buf_bytes(b, s, 9);
}

/* The half-precision bits of v when v is exactly a binary16 value, else -1. */
static int32_t edged__to_half(double v)
{
    uint32_t sign = __builtin_signbit(v) ? 0x8000u : 0;
    double a = sign ? -v : v;
    if (v != v) return 0x7e00;
    if (__builtin_isinf(v)) return (int32_t)(sign | 0x7c00u);
    if (a < 0x1p-14) {
        double t = a * 0x1p24;              /* exact: a power-of-two scale */
        if (t != (double)(uint32_t)t) return -1;
        return (int32_t)(sign | (uint32_t)t);
    }
    if (a > 65504.0) return -1;
    int e = -14;
    double p = 0x1p-14;
    while (a >= p * 2) {
        p *= 2;
        e++;
    }
    double m = (a / p - 1.0) * 1024.0;
    if (m != (double)(uint32_t)m) return -1;
    return (int32_t)(sign | (uint32_t)(e + 15) << 10 | (uint32_t)m);
}

/* The shortest of half, single and double that holds v exactly; NaN as the
 * half 0x7e00 (RFC 8949 4.2.2). */
EDGED__API int edged_cbor_put_float(edged_buf *b, double v)
{
    int32_t h = edged__to_half(v);
    if (h >= 0) {
        char s[3] = { (char)0xf9, (char)(h >> 8), (char)h };
        return edged_buf_bytes(b, s, 3);
    }
    float f = (float)v;
    if ((double)f == v) {
        uint32_t bits;
        memcpy(&bits, &f, 4);
        char s[5] = { (char)0xfa, (char)(bits >> 24), (char)(bits >> 16), (char)(bits >> 8), (char)bits };
        return edged_buf_bytes(b, s, 5);
    }
    return edged_cbor_put_float64(b, v);
}

/* A JSON integer's text (-?[0-9]+) as CBOR: an integer when it lies within
 * -2^64 .. 2^64-1, else a bignum (tag 2, or tag 3 holding -1 - n) whose
 * bytes have no leading zeros. `scratch` needs digits.len + 1 bytes.
 * 0, or -1 (not such text, or b->failed). */
EDGED__API int edged_cbor_put_decimal(edged_buf *b, edged_str digits, unsigned char *scratch, uint32_t scratch_len)
{
    const unsigned char *s = (const unsigned char *)digits.ptr;
    uint32_t n = digits.len, i = 0, len = 0;     /* scratch: little-endian base 256 */
    int neg = 0;
    if (n && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == n || scratch_len < n + 1) return -1;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        uint32_t carry = (uint32_t)(s[i] - '0');
        for (uint32_t k = 0; k < len; k++) {
            uint32_t t = scratch[k] * 10u + carry;
            scratch[k] = (unsigned char)t;
            carry = t >> 8;
        }
        if (carry) scratch[len++] = (unsigned char)carry;
    }
    while (len && scratch[len - 1] == 0) len--;
    if (neg) {
        if (len == 0) return edged_cbor_put_uint(b, 0);    /* -0 */
        for (uint32_t k = 0;; k++) {                     /* n - 1, n >= 1 */
            if (scratch[k]--) break;
        }
        while (len && scratch[len - 1] == 0) len--;
    }
    if (len <= 8) {
        uint64_t v = 0;
        for (uint32_t k = len; k-- > 0;)
            v = (v << 8) | scratch[k];
        return edged_cbor_put_head(b, neg ? 1 : 0, v);
    }
    uint32_t start = b->len;
    edged_cbor_put_tag(b, neg ? 3 : 2);
    edged_cbor_put_head(b, 2, len);
    for (uint32_t k = len; k-- > 0;)
        edged_buf_char(b, (char)scratch[k]);
    if (b->failed) {
        if (b->len > start) b->len = start;
        return -1;
    }
    return 0;
}

/* ---- MessagePack writer ------------------------------------------------ */

static int edged__mp_head(edged_buf *b, unsigned char code, uint64_t v, uint32_t width)
{
    unsigned char h[9];
    h[0] = code;
    for (uint32_t i = 0; i < width; i++)
        h[1 + i] = (unsigned char)(v >> (8 * (width - 1 - i)));
    return edged_buf_bytes(b, h, 1 + width);
}

EDGED__API int edged_msgpack_put_nil(edged_buf *b) { return edged_buf_char(b, (char)0xc0); }
EDGED__API int edged_msgpack_put_bool(edged_buf *b, int v) { return edged_buf_char(b, (char)(v ? 0xc3 : 0xc2)); }

/* Integers in their shortest form. */
EDGED__API int edged_msgpack_put_uint(edged_buf *b, uint64_t v)
{
    if (v < 128) return edged_buf_char(b, (char)v);
    if (v <= 0xff) return edged__mp_head(b, 0xcc, v, 1);
    if (v <= 0xffff) return edged__mp_head(b, 0xcd, v, 2);
    if (v <= 0xffffffffu) return edged__mp_head(b, 0xce, v, 4);
    return edged__mp_head(b, 0xcf, v, 8);
}

EDGED__API int edged_msgpack_put_int(edged_buf *b, int64_t v)
{
    if (v >= 0) return edged_msgpack_put_uint(b, (uint64_t)v);
    if (v >= -32) return edged_buf_char(b, (char)(unsigned char)(int8_t)v);
    if (v >= -128) return edged__mp_head(b, 0xd0, (uint64_t)v, 1);
    if (v >= -32768) return edged__mp_head(b, 0xd1, (uint64_t)v, 2);
    if (v >= -2147483647 - 1) return edged__mp_head(b, 0xd2, (uint64_t)v, 4);
    return edged__mp_head(b, 0xd3, (uint64_t)v, 8);
}

EDGED__API int edged_msgpack_put_float64(edged_buf *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    return edged__mp_head(b, 0xcb, bits, 8);
}

EDGED__API int edged_msgpack_put_float32(edged_buf *b, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return edged__mp_head(b, 0xca, bits, 4);
}

static int edged__mp_string(edged_buf *b, int text, const void *p, uint32_t n)
{
    uint32_t start = b->len;
    if (text && n < 32) edged_buf_char(b, (char)(0xa0 | n));
    else if (n <= 0xff) edged__mp_head(b, text ? 0xd9 : 0xc4, n, 1);
    else if (n <= 0xffff) edged__mp_head(b, text ? 0xda : 0xc5, n, 2);
    else edged__mp_head(b, text ? 0xdb : 0xc6, n, 4);
    edged_buf_bytes(b, p, n);
    if (b->failed) {
        if (b->len > start) b->len = start;
        return -1;
    }
    return 0;
}

EDGED__API int edged_msgpack_put_str(edged_buf *b, edged_str s) { return edged__mp_string(b, 1, s.ptr, s.len); }
EDGED__API int edged_msgpack_put_bin(edged_buf *b, const void *p, uint32_t n) { return edged__mp_string(b, 0, p, n); }

EDGED__API int edged_msgpack_put_array(edged_buf *b, uint32_t n)
{
    if (n < 16) return edged_buf_char(b, (char)(0x90 | n));
    return n <= 0xffff ? edged__mp_head(b, 0xdc, n, 2) : edged__mp_head(b, 0xdd, n, 4);
}

EDGED__API int edged_msgpack_put_map(edged_buf *b, uint32_t pairs)
{
    if (pairs < 16) return edged_buf_char(b, (char)(0x80 | pairs));
    return pairs <= 0xffff ? edged__mp_head(b, 0xde, pairs, 2) : edged__mp_head(b, 0xdf, pairs, 4);
}

/* ext of type -128..127 (-1 is the timestamp); fixext for 1, 2, 4, 8, 16 bytes. */
EDGED__API int edged_msgpack_put_ext(edged_buf *b, int type, const void *p, uint32_t n)
{
    uint32_t start = b->len;
    unsigned char t = (unsigned char)(signed char)type;
    int fix = n == 1 ? 0xd4 : n == 2 ? 0xd5 : n == 4 ? 0xd6 : n == 8 ? 0xd7 : n == 16 ? 0xd8 : 0;
    if (fix) edged_buf_char(b, (char)fix);
    else if (n <= 0xff) edged__mp_head(b, 0xc7, n, 1);
    else if (n <= 0xffff) edged__mp_head(b, 0xc8, n, 2);
    else edged__mp_head(b, 0xc9, n, 4);
    edged_buf_char(b, (char)t);
    edged_buf_bytes(b, p, n);
    if (b->failed) {
        if (b->len > start) b->len = start;
        return -1;
    }
    return 0;
}

#endif /* EDGED_BINARY_H */
