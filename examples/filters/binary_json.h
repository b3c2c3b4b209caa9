/*
 * binary_json.h - the conversion shared by cbor_json.c and msgpack_json.c:
 * a CBOR or MessagePack payload to JSON and back, with the mapping of
 * docs/binary-payloads.md. Included once, after BINARY_CBOR is set to 1
 * (CBOR) or 0 (MessagePack).
 *
 * params: direction  to_json (default) or from_json
 *         topic      the output topic (default: the input topic)
 *
 * A payload that is malformed, nested deeper than 32 levels or (from_json)
 * has no encoding in the format is refused with EDGED_REJECT and a reason:
 * edged dead-letters it. Freestanding like the other examples: the SDK's
 * headers read and write the floats' text exactly, without libc.
 */
#define EDGED_WITH_INIT
#include "edged.h"
#include "edged_binary.h"
#include "edged_json.h"

#if BINARY_CBOR
#define NEXT edged_cbor_next
#define FORMAT "CBOR"
#else
#define NEXT edged_msgpack_next
#define FORMAT "MessagePack"
#endif

static int from_json;
static edged_str out_topic;

static char out_store[EDGED_OUTPUT_CAP - 4 - 8];
static char gather_store[EDGED_INPUT_CAP];      /* one string or number at a time */
static uint32_t scratch[EDGED_INPUT_CAP / 4 + 2];
static edged_bin_reader peek;                   /* map lookahead, one map at a time */
static const char *why;                         /* the reason of a refusal */

static int edged_filter_init(void)
{
    edged_str d = edged_param("direction");
    if (d.ptr == 0 || edged_str_eq(d, EDGED_LIT("to_json"))) {
        from_json = 0;
    } else if (edged_str_eq(d, EDGED_LIT("from_json"))) {
        from_json = 1;
    } else {
        edged_log(EDGED_LOG_ERROR, "param 'direction' must be to_json or from_json");
        return 1;
    }
    out_topic = edged_param("topic");
    if (out_topic.ptr && !edged_topic_valid(out_topic)) {
        edged_log(EDGED_LOG_ERROR, "param 'topic' is not a valid topic");
        return 2;
    }
    return 0;
}

static int fail(const char *reason)
{
    if (!why) why = reason;
    return -1;
}

/* ---- binary to JSON ---------------------------------------------------- */

static void json_double(edged_buf *b, double v)
{
    if (v != v) edged_buf_cstr(b, "{\"$float\":\"NaN\"}");
    else if (v - v != 0) edged_buf_cstr(b, v > 0 ? "{\"$float\":\"Infinity\"}" : "{\"$float\":\"-Infinity\"}");
    else edged_buf_double(b, v);
}

/* The whole string whose first item is `it`: its bytes, or for an
 * indefinite CBOR string its chunks joined in gather_store. *utf8 says
 * whether it is valid UTF-8, chunk by chunk (RFC 8949 3.2.3: a code point
 * never spans two chunks). */
static int gather(edged_bin_reader *r, const edged_bin_item *it, edged_str *out, int *utf8)
{
    if (!it->indefinite) {
        out->ptr = (const char *)it->ptr;
        out->len = it->len;
        *utf8 = edged_utf8_valid(it->ptr, it->len);
        return 0;
    }
    edged_buf g;
    edged_bin_item c;
    edged_buf_init(&g, gather_store, sizeof gather_store);
    *utf8 = 1;
    while (NEXT(r, &c) != EDGED_BIN_END) {
        if (c.type == EDGED_BIN_ERROR) return -1;
        if (!edged_utf8_valid(c.ptr, c.len)) *utf8 = 0;
        edged_buf_bytes(&g, c.ptr, c.len);
    }
    if (g.failed) return fail("string too long");
    *out = edged_buf_str(&g);
    return 0;
}

static int to_json(edged_bin_reader *r, edged_bin_item *it, edged_buf *b);

/* The rest of the item after its first item `it` was read. */
static int value_json(edged_bin_reader *r, edged_buf *b)
{
    edged_bin_item it;
    if (NEXT(r, &it) == EDGED_BIN_ERROR) return -1;
    if (it.type == EDGED_BIN_END || it.type == EDGED_BIN_EOF) return fail("malformed");
    return to_json(r, &it, b);
}

static void string_json(edged_buf *b, edged_str s, int text, int utf8)
{
    if (text && utf8) {
        edged_buf_json_string(b, s);
        return;
    }
    edged_buf_cstr(b, text ? "{\"$str_b64\":\"" : "{\"$bytes\":\"");
    edged_buf_base64(b, (const unsigned char *)s.ptr, s.len);
    edged_buf_cstr(b, "\"}");
}

/* 1 when every key of the map whose start was just read is a valid UTF-8
 * text string (then it becomes a JSON object), 0 if not, -1 if malformed. */
static int text_keys(const edged_bin_reader *r)
{
    edged_bin_item k;
    peek = *r;
    for (;;) {
        int t = NEXT(&peek, &k);
        if (t == EDGED_BIN_END) return 1;
        if (t != EDGED_BIN_TEXT) return t == EDGED_BIN_ERROR ? -1 : 0;
        if (k.indefinite) {
            /* Each chunk is a text string: the whole is valid when they all are. */
            while ((t = NEXT(&peek, &k)) != EDGED_BIN_END) {
                if (t == EDGED_BIN_ERROR) return -1;
                if (!edged_utf8_valid(k.ptr, k.len)) return 0;
            }
        } else if (!edged_utf8_valid(k.ptr, k.len)) {
            return 0;
        }
        if (edged_bin_skip(&peek, NEXT) == EDGED_BIN_ERROR) return -1;
    }
}

static int to_json(edged_bin_reader *r, edged_bin_item *it, edged_buf *b)
{
    edged_str s;
    int utf8;
    switch (it->type) {
    case EDGED_BIN_UINT:
    case EDGED_BIN_NINT:
        edged_buf_bin_int(b, it);
        return 0;
    case EDGED_BIN_FLOAT:
        json_double(b, it->f);
        return 0;
    case EDGED_BIN_FALSE: edged_buf_cstr(b, "false"); return 0;
    case EDGED_BIN_TRUE: edged_buf_cstr(b, "true"); return 0;
    case EDGED_BIN_NULL: edged_buf_cstr(b, "null"); return 0;
    case EDGED_BIN_UNDEFINED: edged_buf_cstr(b, "{\"$undefined\":true}"); return 0;
    case EDGED_BIN_SIMPLE:
        edged_buf_cstr(b, "{\"$simple\":");
        edged_buf_int(b, (int64_t)it->value);
        edged_buf_char(b, '}');
        return 0;
    case EDGED_BIN_BYTES:
    case EDGED_BIN_TEXT:
        if (gather(r, it, &s, &utf8) != 0) return -1;
        string_json(b, s, it->type == EDGED_BIN_TEXT, utf8);
        return 0;
    case EDGED_BIN_EXT:
        edged_buf_cstr(b, "{\"$ext\":");
        edged_buf_int(b, it->ext_type);
        edged_buf_cstr(b, ",\"data\":\"");
        edged_buf_base64(b, it->ptr, it->len);
        edged_buf_cstr(b, "\"}");
        return 0;
    case EDGED_BIN_ARRAY: {
        edged_buf_char(b, '[');
        for (int first = 1;; first = 0) {
            edged_bin_item e;
            int t = NEXT(r, &e);
            if (t == EDGED_BIN_END) break;
            if (t == EDGED_BIN_ERROR || t == EDGED_BIN_EOF) return -1;
            if (!first) edged_buf_char(b, ',');
            if (to_json(r, &e, b) != 0) return -1;
        }
        edged_buf_char(b, ']');
        return 0;
    }
    case EDGED_BIN_MAP: {
        int object = text_keys(r);
        if (object < 0) return fail(edged_bin_error_text(peek.error));
        edged_buf_cstr(b, object ? "{" : "{\"$map\":[");
        for (int first = 1;; first = 0) {
            edged_bin_item k;
            int t = NEXT(r, &k);
            if (t == EDGED_BIN_END) break;
            if (t == EDGED_BIN_ERROR || t == EDGED_BIN_EOF) return -1;
            if (!first) edged_buf_char(b, ',');
            if (object) {
                if (gather(r, &k, &s, &utf8) != 0) return -1;
                edged_buf_json_string(b, s);
                edged_buf_char(b, ':');
            } else {
                edged_buf_char(b, '[');
                if (to_json(r, &k, b) != 0) return -1;
                edged_buf_char(b, ',');
            }
            if (value_json(r, b) != 0) return -1;
            if (!object) edged_buf_char(b, ']');
        }
        edged_buf_cstr(b, object ? "}" : "]}");
        return 0;
    }
    case EDGED_BIN_TAG:
        if (it->value == 2 || it->value == 3) {
            edged_bin_item m;
            int t = NEXT(r, &m);
            if (t == EDGED_BIN_ERROR) return -1;
            if (t != EDGED_BIN_BYTES) return fail("a bignum tag without a byte string");
            if (gather(r, &m, &s, &utf8) != 0) return -1;
            if (edged_buf_bignum(b, (const unsigned char *)s.ptr, s.len, it->value == 3, it->value == 3, scratch,
                                 sizeof scratch / sizeof scratch[0]) != 0)
                return fail("bignum too long");
            return 0;
        }
        edged_buf_cstr(b, "{\"$tag\":");
        edged_buf_bin_int(b, &(edged_bin_item){ .type = EDGED_BIN_UINT, .value = it->value });
        edged_buf_cstr(b, ",\"value\":");
        if (value_json(r, b) != 0) return -1;
        edged_buf_char(b, '}');
        return 0;
    default:
        return fail("malformed");
    }
}

/* ---- JSON to binary ---------------------------------------------------- */

#if BINARY_CBOR
#define PUT_TEXT(b, s) edged_cbor_put_text(b, s)
#define PUT_BYTES(b, s) edged_cbor_put_bytes(b, (s).ptr, (s).len)
#define PUT_ARRAY(b, n) edged_cbor_put_array(b, (uint64_t)(n))
#define PUT_MAP(b, n) edged_cbor_put_map(b, (uint64_t)(n))
#define PUT_NULL(b) edged_cbor_put_null(b)
#define PUT_BOOL(b, v) edged_cbor_put_bool(b, v)
#define PUT_FLOAT(b, v) edged_cbor_put_float(b, v)
#else
#define PUT_TEXT(b, s) edged_msgpack_put_str(b, s)
#define PUT_BYTES(b, s) edged_msgpack_put_bin(b, (s).ptr, (s).len)
#define PUT_ARRAY(b, n) edged_msgpack_put_array(b, (uint32_t)(n))
#define PUT_MAP(b, n) edged_msgpack_put_map(b, (uint32_t)(n))
#define PUT_NULL(b) edged_msgpack_put_nil(b)
#define PUT_BOOL(b, v) edged_msgpack_put_bool(b, v)
#define PUT_FLOAT(b, v) edged_msgpack_put_float64(b, v)
#endif

static int from_value(edged_json_reader *j, edged_json_token *t, edged_buf *b);

static int key_is(const edged_json_token *t, const char *name)
{
    return !t->has_escapes && edged_str_eq(t->raw, edged_cstr(name));
}

/* A string token decoded into gather_store. */
static int unescaped(const edged_json_token *t, edged_str *out)
{
    edged_buf g;
    edged_buf_init(&g, gather_store, sizeof gather_store);
    if (edged_buf_json_unescape(&g, t->raw) != 0) return fail("a string with a lone surrogate");
    *out = edged_buf_str(&g);
    return 0;
}

/* An integer token as sign and magnitude:
 * 0 with the sign in *neg and the magnitude in *mag, -1 beyond 64 bits. */
static int int64_parts(edged_str raw, int *neg, uint64_t *mag)
{
    const unsigned char *p = (const unsigned char *)raw.ptr, *end = p + raw.len;
    uint64_t v = 0;
    *neg = p < end && *p == '-';
    if (*neg) p++;
    for (; p < end; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *mag = v;
    return 0;
}

static int put_number(const edged_json_token *t, edged_buf *b)
{
    if (t->is_float) {
        double v;
        if (edged_parse_double(t->raw, &v) != 0) return fail("a number beyond the double range");
        PUT_FLOAT(b, v);
        return 0;
    }
#if BINARY_CBOR
    if (edged_cbor_put_decimal(b, t->raw, (unsigned char *)scratch, sizeof scratch) != 0 && !b->failed)
        return fail("an integer too long");
    return 0;
#else
    int neg;
    uint64_t mag;
    if (int64_parts(t->raw, &neg, &mag) != 0 || (neg && mag > (uint64_t)1 << 63))
        return fail("an integer beyond the MessagePack range");
    if (neg) edged_msgpack_put_int(b, (int64_t)(0 - mag));
    else edged_msgpack_put_uint(b, mag);
    return 0;
#endif
}

/* The next token, which must be a value; it is converted. */
static int next_value(edged_json_reader *j, edged_buf *b)
{
    edged_json_token t;
    int type = edged_json_next(j, &t);
    if (type == EDGED_JSON_ERROR || type == EDGED_JSON_ARRAY_END || type == EDGED_JSON_OBJECT_END)
        return fail("malformed JSON");
    return from_value(j, &t, b);
}

static int expect(edged_json_reader *j, int type)
{
    edged_json_token t;
    return edged_json_next(j, &t) == type ? 0 : fail("malformed JSON");
}

/* The value of member `name` of the object whose start j just read, found
 * on a copy: its first token in *t. 0, or -1 when absent. */
static int member(const edged_json_reader *j, const char *name, edged_json_token *t)
{
    edged_json_reader c = *j;
    for (;;) {
        if (edged_json_next(&c, t) != EDGED_JSON_KEY) return -1;
        int hit = key_is(t, name);
        if (edged_json_next(&c, t) == EDGED_JSON_ERROR) return -1;
        if (hit) return 0;
        if (edged_json_skip_rest(&c, t) != 0) return -1;
    }
}

static int integer_in(const edged_json_token *t, int64_t lo, uint64_t hi, int64_t *out_signed, uint64_t *out)
{
    int neg;
    uint64_t mag;
    if (t->type != EDGED_JSON_NUMBER || t->is_float || int64_parts(t->raw, &neg, &mag) != 0) return -1;
    if (neg ? (mag != 0 && (lo >= 0 || mag > (uint64_t)(-(lo + 1)) + 1)) : mag > hi) return -1;
    *out = mag;
    *out_signed = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

/* The special objects of the mapping; 1 when `t` starts one (converted),
 * 0 when it is a plain object, -1 on an error. */
static int special(edged_json_reader *j, edged_buf *b)
{
    edged_json_reader c = *j;
    edged_json_token k, v;
    int64_t n = edged_json_count(j);
    if (n < 1 || n > 2) return n < 0 ? fail("malformed JSON") : 0;
    if (edged_json_next(&c, &k) != EDGED_JSON_KEY) return fail("malformed JSON");
    const char *one[] = { "$float", "$bytes", "$str_b64", "$map", "$undefined", "$simple" };
    if (n == 1) {
        int which = -1;
        for (int i = 0; i < 6; i++)
            if (key_is(&k, one[i])) which = i;
        if (which < 0) return 0;
        *j = c;
        if (edged_json_next(j, &v) == EDGED_JSON_ERROR) return fail("malformed JSON");
        edged_str s;
        int64_t sv;
        uint64_t uv;
        switch (which) {
        case 0:
            if (v.type != EDGED_JSON_STRING) return fail("a $float that is not a string");
            if (edged_str_eq(v.raw, EDGED_LIT("NaN"))) PUT_FLOAT(b, __builtin_nan(""));
            else if (edged_str_eq(v.raw, EDGED_LIT("Infinity"))) PUT_FLOAT(b, __builtin_inf());
            else if (edged_str_eq(v.raw, EDGED_LIT("-Infinity"))) PUT_FLOAT(b, -__builtin_inf());
            else return fail("a $float that is not NaN, Infinity or -Infinity");
            break;
        case 1:
        case 2: {
            edged_buf g;
            if (v.type != EDGED_JSON_STRING || v.has_escapes) return fail("bad base64");
            edged_buf_init(&g, gather_store, sizeof gather_store);
            if (edged_buf_unbase64(&g, v.raw) != 0) return fail("bad base64");
            s = edged_buf_str(&g);
            if (which == 1) PUT_BYTES(b, s);
            else PUT_TEXT(b, s);
            break;
        }
        case 3: {
            if (v.type != EDGED_JSON_ARRAY) return fail("a $map that is not an array");
            int64_t pairs = edged_json_count(j);
            if (pairs < 0) return fail("malformed JSON");
            PUT_MAP(b, pairs);
            for (int64_t i = 0; i < pairs; i++) {
                if (expect(j, EDGED_JSON_ARRAY) != 0) return fail("a $map entry that is not a pair");
                if (next_value(j, b) != 0 || next_value(j, b) != 0) return -1;
                if (expect(j, EDGED_JSON_ARRAY_END) != 0) return fail("a $map entry that is not a pair");
            }
            if (expect(j, EDGED_JSON_ARRAY_END) != 0) return -1;
            break;
        }
        case 4:
#if BINARY_CBOR
            if (v.type != EDGED_JSON_TRUE) return fail("an $undefined that is not true");
            edged_cbor_put_undefined(b);
            break;
#else
            return fail("$undefined has no MessagePack encoding");
#endif
        case 5:
#if BINARY_CBOR
            if (integer_in(&v, 0, 255, &sv, &uv) != 0 || (uv >= 20 && uv < 32)) return fail("a bad $simple");
            edged_cbor_put_simple(b, (uint32_t)uv);
            break;
#else
            (void)sv;
            (void)uv;
            return fail("$simple has no MessagePack encoding");
#endif
        }
        return expect(j, EDGED_JSON_OBJECT_END) == 0 ? 1 : -1;
    }
    /* two members: {"$tag": N, "value": ...} or {"$ext": T, "data": "..."} in either order */
    edged_json_token second;
    edged_json_reader c2 = c;
    if (edged_json_next(&c2, &v) == EDGED_JSON_ERROR || edged_json_skip_rest(&c2, &v) != 0 ||
        edged_json_next(&c2, &second) != EDGED_JSON_KEY)
        return fail("malformed JSON");
    int tag = (key_is(&k, "$tag") && key_is(&second, "value")) || (key_is(&k, "value") && key_is(&second, "$tag"));
    int ext = (key_is(&k, "$ext") && key_is(&second, "data")) || (key_is(&k, "data") && key_is(&second, "$ext"));
    if (!tag && !ext) return 0;
    edged_json_token num;
    int64_t sv;
    uint64_t uv;
    if (member(j, tag ? "$tag" : "$ext", &num) != 0) return fail("malformed JSON");
    if (tag) {
#if BINARY_CBOR
        if (integer_in(&num, 0, UINT64_MAX, &sv, &uv) != 0) return fail("a $tag that is not 0..2^64-1");
        edged_cbor_put_tag(b, uv);
        for (int i = 0; i < 2; i++) {
            if (edged_json_next(j, &k) != EDGED_JSON_KEY) return fail("malformed JSON");
            if (key_is(&k, "value")) {
                if (next_value(j, b) != 0) return -1;
            } else if (edged_json_next(j, &v) == EDGED_JSON_ERROR) {
                return fail("malformed JSON");
            }
        }
        return expect(j, EDGED_JSON_OBJECT_END) == 0 ? 1 : -1;
#else
        return fail("$tag has no MessagePack encoding");
#endif
    }
#if BINARY_CBOR
    (void)sv;
    (void)uv;
    return fail("$ext has no CBOR encoding");
#else
    if (integer_in(&num, -128, 127, &sv, &uv) != 0) return fail("an $ext type that is not -128..127");
    if (member(j, "data", &v) != 0 || v.type != EDGED_JSON_STRING || v.has_escapes) return fail("bad base64");
    edged_buf g;
    edged_buf_init(&g, gather_store, sizeof gather_store);
    if (edged_buf_unbase64(&g, v.raw) != 0) return fail("bad base64");
    edged_msgpack_put_ext(b, (int)sv, g.ptr, g.len);
    if (edged_json_skip_rest(j, &(edged_json_token){ .type = EDGED_JSON_OBJECT }) != 0) return fail("malformed JSON");
    return 1;
#endif
}

static int from_value(edged_json_reader *j, edged_json_token *t, edged_buf *b)
{
    edged_str s;
    switch (t->type) {
    case EDGED_JSON_NULL: PUT_NULL(b); return 0;
    case EDGED_JSON_TRUE: PUT_BOOL(b, 1); return 0;
    case EDGED_JSON_FALSE: PUT_BOOL(b, 0); return 0;
    case EDGED_JSON_NUMBER: return put_number(t, b);
    case EDGED_JSON_STRING:
        if (unescaped(t, &s) != 0) return -1;
        if (!edged_utf8_valid((const unsigned char *)s.ptr, s.len)) return fail("a string that is not UTF-8");
        PUT_TEXT(b, s);
        return 0;
    case EDGED_JSON_ARRAY: {
        int64_t n = edged_json_count(j);
        if (n < 0) return fail("malformed JSON");
        PUT_ARRAY(b, n);
        for (int64_t i = 0; i < n; i++)
            if (next_value(j, b) != 0) return -1;
        return expect(j, EDGED_JSON_ARRAY_END);
    }
    case EDGED_JSON_OBJECT: {
        int sp = special(j, b);
        if (sp != 0) return sp > 0 ? 0 : -1;
        int64_t n = edged_json_count(j);
        if (n < 0) return fail("malformed JSON");
        PUT_MAP(b, n);
        for (int64_t i = 0; i < n; i++) {
            edged_json_token k;
            if (edged_json_next(j, &k) != EDGED_JSON_KEY) return fail("malformed JSON");
            if (unescaped(&k, &s) != 0) return -1;
            if (!edged_utf8_valid((const unsigned char *)s.ptr, s.len)) return fail("a string that is not UTF-8");
            PUT_TEXT(b, s);
            if (next_value(j, b) != 0) return -1;
        }
        return expect(j, EDGED_JSON_OBJECT_END);
    }
    default:
        return fail("malformed JSON");
    }
}

/* ---- the filter -------------------------------------------------------- */

static int refuse(const char *prefix)
{
    static char reason[200];
    edged_buf r;
    edged_buf_init(&r, reason, sizeof reason);
    edged_buf_cstr(&r, prefix);
    edged_buf_cstr(&r, why ? why : "malformed");
    return edged_reject(edged_buf_str(&r));
}

static int edged_filter(edged_str topic, edged_str payload)
{
    edged_buf b;
    edged_buf_init(&b, out_store, sizeof out_store);
    why = 0;
    if (from_json) {
        edged_json_reader j;
        edged_json_token t;
        edged_json_reader_init(&j, payload);
        if (edged_json_next(&j, &t) == EDGED_JSON_ERROR || from_value(&j, &t, &b) != 0 ||
            edged_json_next(&j, &t) != EDGED_JSON_EOF)
            return refuse("JSON to " FORMAT ": ");
    } else {
        edged_bin_reader r;
        edged_bin_item it;
        edged_bin_reader_init(&r, payload);
        int t = NEXT(&r, &it);
        if (t == EDGED_BIN_ERROR || to_json(&r, &it, &b) != 0 || NEXT(&r, &it) != EDGED_BIN_EOF ||
            edged_bin_finish(&r) != 0) {
            if (!why) why = edged_bin_error_text(r.error);
            return refuse(FORMAT " to JSON: ");
        }
    }
    if (b.failed) {
        why = "the result does not fit the output area";
        return refuse(from_json ? "JSON to " FORMAT ": " : FORMAT " to JSON: ");
    }
    if (edged_emit(out_topic.ptr ? out_topic : topic, edged_buf_str(&b)) != 0) return EDGED_DROP;
    return EDGED_EMIT;
}
