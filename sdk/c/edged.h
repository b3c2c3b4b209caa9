/*
 * edged.h - single-header C SDK for edged filters (filter ABI v1).
 *
 * Include it from exactly one .c file: it defines the module's exports,
 * its static buffers and the few libc routines the compiler may call.
 * See sdk/c/README.md for the API and docs/filter-abi.md for the ABI.
 *
 * Apart from the ABI entry points, everything the SDK defines is static or
 * hidden, so a module built with --export-dynamic exports nothing else.
 */
#ifndef EDGED_H
#define EDGED_H

#include <stddef.h>
#include <stdint.h>

#ifndef __wasm32__
#error "edged.h targets wasm32 (clang --target=wasm32)"
#endif

/* ---- configuration ----------------------------------------------------- */

#ifndef EDGED_INPUT_CAP
#define EDGED_INPUT_CAP (64u * 1024u)
#endif
#ifndef EDGED_OUTPUT_CAP
#define EDGED_OUTPUT_CAP (64u * 1024u)
#endif
/* Params live in the input area only during edged_init; the next message
 * overwrites them, so the SDK keeps its own copy of this size. */
#ifndef EDGED_PARAMS_CAP
#define EDGED_PARAMS_CAP 4096u
#endif
#ifndef EDGED_MAX_PARAMS
#define EDGED_MAX_PARAMS 32
#endif

/* With EDGED_WITH_STATE: the largest state blob, saved or loaded. The node's
 * budgets.max_state (default 256 KiB) caps it too. */
#ifndef EDGED_STATE_CAP
#define EDGED_STATE_CAP (64u * 1024u)
#endif

/* With EDGED_WITH_PROPERTIES: the input's MQTT 5 properties area, and the
 * most property bytes one emitted message may set. */
#ifndef EDGED_PROPS_CAP
#define EDGED_PROPS_CAP 4096u
#endif
#ifndef EDGED_PROPS_OUT_CAP
#define EDGED_PROPS_OUT_CAP 1024u
#endif

_Static_assert(EDGED_INPUT_CAP >= 1, "EDGED_INPUT_CAP must be positive");
_Static_assert(EDGED_OUTPUT_CAP >= 4, "the output area must hold its 4-byte header");

/* ---- public types and constants --------------------------------------- */

enum { EDGED_DROP = 0, EDGED_FORWARD = 1, EDGED_EMIT = 2, EDGED_REJECT = 3 };
enum { EDGED_LOG_DEBUG = 0, EDGED_LOG_INFO = 1, EDGED_LOG_WARN = 2, EDGED_LOG_ERROR = 3 };

/* Returned by edged_init when the params are malformed or exceed
 * EDGED_PARAMS_CAP / EDGED_MAX_PARAMS. Negative codes belong to the SDK;
 * edged_filter_init should report its own failures with positive ones. */
#define EDGED_INIT_BAD_PARAMS (-1)

/* Byte string that is not NUL-terminated: topics and payloads arrive that way,
 * and slicing a JSON payload must not copy. */
typedef struct {
    const char *ptr;
    uint32_t len;
} edged_str;

/* For literals the length is known at compile time; no scan needed. */
#define EDGED_LIT(s) ((edged_str){ (s), (uint32_t)(sizeof(s) - 1) })

/* Append-only builder over caller-owned storage. A failed append leaves the
 * content untouched and sets `failed`, so a payload can be built with
 * unchecked appends and tested once before it is emitted. */
typedef struct {
    char *ptr;
    uint32_t len;
    uint32_t cap;
    int failed;
} edged_buf;

/* A state blob being written: edged_put_* append little-endian values to it.
 * Like edged_buf, a failed append sets `failed` and refuses the rest. */
typedef struct {
    unsigned char *ptr;
    uint32_t len;
    uint32_t cap;
    int failed;
} edged_writer;

/* A state blob being read: edged_get_* take values from `pos` on. Reading
 * past the end fails (-1), leaves *out untouched and sets `failed`, so a
 * truncated blob can never be half-understood as a whole one. */
typedef struct {
    const unsigned char *ptr;
    uint32_t len;
    uint32_t pos;
    int failed;
} edged_reader;

/* MQTT 5 property identifiers, as the ABI's property entries use them. */
enum {
    EDGED_PROP_PAYLOAD_FORMAT = 1,
    EDGED_PROP_MESSAGE_EXPIRY = 2,
    EDGED_PROP_CONTENT_TYPE = 3,
    EDGED_PROP_RESPONSE_TOPIC = 8,
    EDGED_PROP_CORRELATION_DATA = 9,
    EDGED_PROP_USER = 38
};

/* One property entry: `a` is the value (for a user property its name, and
 * `b` its value); integer properties are 4 little-endian bytes in `a`. */
typedef struct {
    uint32_t id;
    edged_str a;
    edged_str b;
} edged_prop;

/* What edged_state_load returns when the filter's edged_filter_load
 * accepted the blob but did not read it cleanly: a read ran past its end,
 * or bytes were left unread. Both mean the layout is not the one the
 * format number promised, so the SDK refuses the state for the filter. */
#define EDGED_STATE_TRUNCATED (-1)
#define EDGED_STATE_TRAILING (-2)

#define EDGED_FIXED_MAX_DECIMALS 20
/* edged_buf_fixed refuses magnitudes at or above this, so that the integer
 * part always fits its digit buffer and no exponent is ever needed. */
#define EDGED_FIXED_LIMIT 1e15

/* Functions the filter defines. Declared static so the user's definitions get
 * internal linkage and are not exported by --export-dynamic. */
static int edged_filter(edged_str topic, edged_str payload);
#ifdef EDGED_WITH_INIT
static int edged_filter_init(void);
#endif
#ifdef EDGED_WITH_TICK
static void edged_filter_tick(int64_t now_ms);
#endif
#ifdef EDGED_WITH_STATE
static uint32_t edged_filter_save(edged_writer *w);
static int edged_filter_load(uint32_t format, edged_reader *r);
#endif

#define EDGED__API static __attribute__((unused))

/* ---- freestanding runtime --------------------------------------------- */

/* wasm loads and stores may be unaligned, so whole payloads can move eight
 * bytes at a time without any alignment prologue. */
typedef uint64_t edged__u64_unaligned __attribute__((aligned(1), may_alias));

/* clang lowers struct copies and some loops to these calls, and there is no
 * libc to provide them. Hidden so --export-dynamic leaves them unexported;
 * no_builtin stops the optimizer from turning the loops back into calls to
 * themselves. */
__attribute__((visibility("hidden"), no_builtin("memcpy")))
void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    for (; n >= 8; n -= 8, d += 8, s += 8)
        *(edged__u64_unaligned *)d = *(const edged__u64_unaligned *)s;
    while (n--)
        *d++ = *s++;
    return dst;
}

__attribute__((visibility("hidden"), no_builtin("memmove")))
void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        while (n--)
            d[n] = s[n];
    }
    return dst;
}

__attribute__((visibility("hidden"), no_builtin("memset")))
void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = (unsigned char *)dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

/* ---- host import and static state ------------------------------------- */

__attribute__((import_module("edged"), import_name("log")))
void edged__host_log(int32_t level, const char *ptr, uint32_t len);

static unsigned char edged__in[EDGED_INPUT_CAP] __attribute__((aligned(8)));
static unsigned char edged__out[EDGED_OUTPUT_CAP] __attribute__((aligned(8)));

/* Pointers are 32-bit on wasm32, so this struct is the ABI's 16-byte
 * descriptor and can be initialised statically (it lands in the data
 * section, readable before any call). */
static struct {
    unsigned char *in_ptr;
    uint32_t in_cap;
    unsigned char *out_ptr;
    uint32_t out_cap;
} edged__desc = { edged__in, EDGED_INPUT_CAP, edged__out, EDGED_OUTPUT_CAP };
_Static_assert(sizeof(edged__desc) == 16, "descriptor must be 16 bytes");

static uint32_t edged__used;    /* mirrors the `used` word of the output area */
static int edged__emitted;      /* set by a successful edged_emit */

static char edged__pstore[EDGED_PARAMS_CAP];
static edged_str edged__pkeys[EDGED_MAX_PARAMS];
static edged_str edged__pvals[EDGED_MAX_PARAMS];
static int edged__pcount;

/* ---- strings ----------------------------------------------------------- */

EDGED__API edged_str edged_cstr(const char *s)
{
    edged_str r = { s, 0 };
    if (!s) return r;
    while (s[r.len])
        r.len++;
    return r;
}

EDGED__API int edged_str_eq(edged_str a, edged_str b)
{
    if (a.len != b.len) return 0;
    for (uint32_t i = 0; i < a.len; i++)
        if (a.ptr[i] != b.ptr[i]) return 0;
    return 1;
}

/* FNV-1a, 32 bits: enough to spread topics over a small per-topic table. */
EDGED__API uint32_t edged_hash(edged_str s)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < s.len; i++) {
        h ^= (unsigned char)s.ptr[i];
        h *= 16777619u;
    }
    return h;
}

/* ---- logging ----------------------------------------------------------- */

/* Each call crosses into the host (~9 us): fine in init and ticks, keep it
 * off the per-message path or behind a once-only flag. */
EDGED__API void edged_log_str(int level, edged_str msg)
{
    edged__host_log(level, msg.ptr, msg.len);
}

EDGED__API void edged_log(int level, const char *msg)
{
    edged_log_str(level, edged_cstr(msg));
}

/* ---- output ------------------------------------------------------------ */

static void edged__put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* 1 if the host would accept t as an emitted topic: 1..65535 bytes without
 * '+', '#' or NUL (UTF-8 validity is not checked). Useful to vet a topic
 * param in init instead of failing every emit later. */
EDGED__API int edged_topic_valid(edged_str t)
{
    if (t.len == 0 || t.len > 65535) return 0;
    for (uint32_t i = 0; i < t.len; i++) {
        char c = t.ptr[i];
        if (c == '+' || c == '#' || c == '\0') return 0;
    }
    return 1;
}

/* 0: appended. -1: does not fit in what is left of the output area.
 * -2: the host would refuse the topic. Either way nothing was written. */
#ifdef EDGED_WITH_PROPERTIES
/* ---- MQTT 5 properties (docs/filter-abi.md, "Properties") -------------- */

/* The input's properties, written by the host before each message: `used`,
 * then entries. Read them with edged_prop_next or the getters below. */
static unsigned char edged__props_in[EDGED_PROPS_CAP] __attribute__((aligned(4)));
static struct {
    unsigned char *ptr;
    uint32_t cap;
} edged__props_desc = { edged__props_in, EDGED_PROPS_CAP };
/* What the next edged_emit sets on its message (cleared by it). */
static unsigned char edged__props_out[EDGED_PROPS_OUT_CAP];
static uint32_t edged__props_out_len;

static uint32_t edged__get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The next property of the input from *pos (start at 0): 1 and *out filled,
 * or 0 at the end (or at a malformed entry, which the host never writes). */
EDGED__API int edged_prop_next(uint32_t *pos, edged_prop *out)
{
    uint32_t used = edged__get_u32(edged__props_in);
    if (used > EDGED_PROPS_CAP - 4) return 0;
    uint32_t at = *pos;
    if (at >= used || used - at < 12) return 0;
    const unsigned char *e = edged__props_in + 4 + at;
    uint32_t a = edged__get_u32(e + 4), b = edged__get_u32(e + 8);
    if (a > used - at - 12 || b > used - at - 12 - a) return 0;
    out->id = edged__get_u32(e);
    out->a = (edged_str){ (const char *)e + 12, a };
    out->b = (edged_str){ (const char *)e + 12 + a, b };
    *pos = at + 12 + a + b;
    return 1;
}

/* The input's property `id` (not a user property): 1 and *value, or 0. */
EDGED__API int edged_prop_get(uint32_t id, edged_str *value)
{
    uint32_t pos = 0;
    edged_prop p;
    while (edged_prop_next(&pos, &p))
        if (p.id == id) { *value = p.a; return 1; }
    return 0;
}

/* The value of the input's first user property called `name`: 1, or 0. */
EDGED__API int edged_user_property(edged_str name, edged_str *value)
{
    uint32_t pos = 0;
    edged_prop p;
    while (edged_prop_next(&pos, &p))
        if (p.id == EDGED_PROP_USER && edged_str_eq(p.a, name)) { *value = p.b; return 1; }
    return 0;
}

/* Set a property on the next emitted message (edged_emit takes them all and
 * starts afresh). What is not set comes from the input as the output rule
 * says. 0, or -1 when EDGED_PROPS_OUT_CAP is full (nothing set). */
EDGED__API int edged_set_prop(uint32_t id, edged_str a, edged_str b)
{
    uint32_t room = EDGED_PROPS_OUT_CAP - edged__props_out_len;
    if (room < 12 || a.len > room - 12 || b.len > room - 12 - a.len) return -1;
    unsigned char *e = edged__props_out + edged__props_out_len;
    edged__put_u32(e, id);
    edged__put_u32(e + 4, a.len);
    edged__put_u32(e + 8, b.len);
    memcpy(e + 12, a.ptr, a.len);
    memcpy(e + 12 + a.len, b.ptr, b.len);
    edged__props_out_len += 12 + a.len + b.len;
    return 0;
}

EDGED__API int edged_set_user_property(edged_str name, edged_str value)
{
    return edged_set_prop(EDGED_PROP_USER, name, value);
}

EDGED__API int edged_set_content_type(edged_str value)
{
    return edged_set_prop(EDGED_PROP_CONTENT_TYPE, value, (edged_str){ 0, 0 });
}

EDGED__API int edged_set_correlation_data(edged_str value)
{
    return edged_set_prop(EDGED_PROP_CORRELATION_DATA, value, (edged_str){ 0, 0 });
}

/* 0 or 1 (1: the payload is UTF-8 text). */
EDGED__API int edged_set_payload_format(uint32_t indicator)
{
    unsigned char v[4];
    edged__put_u32(v, indicator);
    return edged_set_prop(EDGED_PROP_PAYLOAD_FORMAT, (edged_str){ (const char *)v, 4 },
                          (edged_str){ 0, 0 });
}

__attribute__((export_name("edged_properties")))
int32_t edged_properties(void)
{
    return (int32_t)(uintptr_t)&edged__props_desc;
}

#define EDGED__RECORD_HEAD 12u
#else
#define EDGED__RECORD_HEAD 8u
#endif

#ifdef EDGED_WITH_PROPERTIES
/* 0: appended, with the properties set since the last emit. -1: does not
 * fit in what is left of the output area. -2: the host would refuse the
 * topic. Either way nothing was written, and the properties stay set. */
EDGED__API int edged_emit(edged_str topic, edged_str payload)
{
    if (!edged_topic_valid(topic)) return -2;
    uint32_t props = edged__props_out_len;
    uint32_t room = EDGED_OUTPUT_CAP - 4 - edged__used;
    if (room < 12 || topic.len > room - 12 || payload.len > room - 12 - topic.len ||
        props > room - 12 - topic.len - payload.len)
        return -1;
    unsigned char *rec = edged__out + 4 + edged__used;
    edged__put_u32(rec, topic.len);
    edged__put_u32(rec + 4, payload.len);
    edged__put_u32(rec + 8, props);
    memcpy(rec + 12, topic.ptr, topic.len);
    memcpy(rec + 12 + topic.len, payload.ptr, payload.len);
    memcpy(rec + 12 + topic.len + payload.len, edged__props_out, props);
    edged__used += 12 + topic.len + payload.len + props;
    edged__put_u32(edged__out, edged__used);
    edged__props_out_len = 0;
    edged__emitted = 1;
    return 0;
}
#else
EDGED__API int edged_emit(edged_str topic, edged_str payload)
{
    /* The host drops the whole call's output if one topic is invalid;
     * refusing it here keeps the other records of the call alive. */
    if (!edged_topic_valid(topic)) return -2;
    /* Compared piecewise so that no sum can wrap. */
    uint32_t room = EDGED_OUTPUT_CAP - 4 - edged__used;
    if (room < 8 || topic.len > room - 8 || payload.len > room - 8 - topic.len)
        return -1;
    unsigned char *rec = edged__out + 4 + edged__used;
    edged__put_u32(rec, topic.len);
    edged__put_u32(rec + 4, payload.len);
    memcpy(rec + 8, topic.ptr, topic.len);
    memcpy(rec + 8 + topic.len, payload.ptr, payload.len);
    edged__used += 8 + topic.len + payload.len;
    edged__put_u32(edged__out, edged__used);
    edged__emitted = 1;
    return 0;
}

#endif

/* Refuse the input: it is dead-lettered with `reason` (at most 1 KiB is kept)
 * and what was emitted during the call still goes on. Use as
 * `return edged_reject(EDGED_LIT("why"));` after any edged_emit calls.
 * Returns EDGED_REJECT, or EDGED_DROP when the reason does not fit in what is
 * left of the output area (the input is then dropped without a dead letter). */
EDGED__API int edged_reject(edged_str reason)
{
    uint32_t room = EDGED_OUTPUT_CAP - 4 - edged__used;
    if (room < EDGED__RECORD_HEAD || reason.len > room - EDGED__RECORD_HEAD)
        return EDGED_DROP;
    unsigned char *rec = edged__out + 4 + edged__used;
    edged__put_u32(rec, 0);
    edged__put_u32(rec + 4, reason.len);
#ifdef EDGED_WITH_PROPERTIES
    edged__put_u32(rec + 8, 0);
#endif
    memcpy(rec + EDGED__RECORD_HEAD, reason.ptr, reason.len);
    edged__used += EDGED__RECORD_HEAD + reason.len;
    edged__put_u32(edged__out, edged__used);
    return EDGED_REJECT;
}

static void edged__reset_output(void)
{
    edged__used = 0;
    edged__emitted = 0;
#ifdef EDGED_WITH_PROPERTIES
    edged__props_out_len = 0;
#endif
    edged__put_u32(edged__out, 0);
}

/* ---- params ------------------------------------------------------------ */

/* Missing keys give {0, 0}. Values are also NUL-terminated, so v.ptr can be
 * used as a C string when v.len > 0. */
EDGED__API edged_str edged_param(const char *key)
{
    edged_str k = edged_cstr(key);
    for (int i = 0; i < edged__pcount; i++)
        if (edged_str_eq(edged__pkeys[i], k)) return edged__pvals[i];
    edged_str none = { 0, 0 };
    return none;
}

/* ---- JSON numbers ------------------------------------------------------ */

static const double edged__pow10[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static int edged__digit(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* The whole of s must be one JSON number (no spaces, no leading '+', no
 * leading zeros, no bare '.'). 0 and *out set, or -1 for anything else,
 * including values beyond the double range. Exact (correctly rounded) when
 * the digits form an integer below 2^53 and the decimal exponent is within
 * +-22, which covers ordinary readings like 20.6 or -0.125; otherwise within
 * a few units in the last place. Digits past the 19th significant one are
 * ignored. */
EDGED__API int edged_parse_number(edged_str s, double *out)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    const unsigned char *end = p + s.len;
    uint64_t mant = 0;
    int sig = 0;            /* significant digits kept in mant */
    int32_t exp10 = 0;
    int neg = 0;

    if (!p || s.len == 0) return -1;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p == end) return -1;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        for (; edged__digit(p, end); p++) {
            if (sig < 19) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                sig++;
            } else {
                exp10++;
            }
        }
    } else {
        return -1;
    }
    if (p < end && *p == '.') {
        p++;
        if (!edged__digit(p, end)) return -1;
        for (; edged__digit(p, end); p++) {
            if (sig < 19) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                exp10--;
                if (mant) sig++;    /* leading zeros of 0.000x carry no precision */
            }
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        int eneg = 0;
        int32_t e = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        if (!edged__digit(p, end)) return -1;
        for (; edged__digit(p, end); p++)
            if (e < 100000) e = e * 10 + (*p - '0');    /* saturate: result is 0 or inf anyway */
        exp10 += eneg ? -e : e;
    }
    if (p != end) return -1;

    double v = (double)mant;
    if (mant != 0) {
        if (exp10 > 400) return -1;
        if (exp10 < -400) {
            v = 0;
        } else if (exp10 >= 0) {
            for (; exp10 > 22; exp10 -= 22)
                v *= 1e22;
            v *= edged__pow10[exp10];
        } else {
            for (; exp10 < -22; exp10 += 22)
                v /= 1e22;
            v /= edged__pow10[-exp10];
        }
        if (__builtin_isinf(v)) return -1;
    }
    *out = neg ? -v : v;
    return 0;
}

/* Absent key or text that is not a JSON number: dflt. Use
 * edged_param_number_strict when a typo in the config must not go unnoticed. */
EDGED__API double edged_param_number(const char *key, double dflt)
{
    double v;
    edged_str s = edged_param(key);
    if (s.len == 0 || edged_parse_number(s, &v) != 0) return dflt;
    return v;
}

/* 0 with *out = the value, or dflt when the key is absent; -1 (and *out
 * untouched) when the key is present but not a JSON number. */
EDGED__API int edged_param_number_strict(const char *key, double dflt, double *out)
{
    edged_str s = edged_param(key);
    if (s.ptr == 0) {
        *out = dflt;
        return 0;
    }
    return edged_parse_number(s, out);
}

/* ---- JSON scanning ----------------------------------------------------- */

static const unsigned char *edged__ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at the opening quote; returns the byte after the closing quote, or 0. */
static const unsigned char *edged__skip_string(const unsigned char *p, const unsigned char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\') {
            p++;
            if (p == end) return 0;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return 0;
}

/* p at '{' or '['. Bracket kinds are tracked in a 64-bit stack so that "{]"
 * is refused; deeper nesting is refused too rather than guessed at. */
static const unsigned char *edged__skip_nested(const unsigned char *p, const unsigned char *end)
{
    uint64_t kinds = 0;     /* bit set = '{' at that depth */
    int depth = 0;
    while (p < end) {
        unsigned char c = *p;
        if (c == '"') {
            p = edged__skip_string(p, end);
            if (!p) return 0;
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == 64) return 0;
            if (c == '{') kinds |= (uint64_t)1 << depth;
            else kinds &= ~((uint64_t)1 << depth);
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) return 0;
            depth--;
            if (((kinds >> depth) & 1) != (uint64_t)(c == '}')) return 0;
            if (depth == 0) return p + 1;
        }
        p++;
    }
    return 0;
}

static int edged__delim(unsigned char c)
{
    return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Scalar tokens run to the next delimiter; validity is judged separately and
 * only for the value that is returned. */
static const unsigned char *edged__skip_value(const unsigned char *p, const unsigned char *end)
{
    if (p == end) return 0;
    if (*p == '"') return edged__skip_string(p, end);
    if (*p == '{' || *p == '[') return edged__skip_nested(p, end);
    const unsigned char *start = p;
    while (p < end && !edged__delim(*p))
        p++;
    return p == start ? 0 : p;
}

static int edged__scalar_ok(edged_str v)
{
    double d;
    return edged_str_eq(v, EDGED_LIT("true")) || edged_str_eq(v, EDGED_LIT("false")) ||
           edged_str_eq(v, EDGED_LIT("null")) || edged_parse_number(v, &d) == 0;
}

/* Finds the first top-level `key` of the JSON object in `json` and sets
 * *raw to its value exactly as written: a number, a string with its quotes,
 * true/false/null, or a whole nested object/array. Returns 0 when found,
 * -1 when the object has no such key, -2 when json is not an object or is
 * malformed before the key is reached.
 *
 * This is a scanner, not a validator: it stops at the first match and does
 * not look at the rest of the document. The returned value is checked to be
 * a complete token (closed string, balanced brackets, a literal or a JSON
 * number); what is inside a nested value or a string is not. Keys are
 * compared byte for byte with their text between the quotes, so a key
 * written with escapes (\u0076alue) does not match "value". */
EDGED__API int edged_json_field(edged_str json, const char *key, edged_str *raw)
{
    const unsigned char *p = (const unsigned char *)json.ptr;
    const unsigned char *end = p + json.len;
    edged_str want = edged_cstr(key);

    if (!p) return -2;
    p = edged__ws(p, end);
    if (p == end || *p != '{') return -2;
    p = edged__ws(p + 1, end);
    if (p < end && *p == '}') return -1;
    for (;;) {
        if (p == end || *p != '"') return -2;
        const unsigned char *kend = edged__skip_string(p, end);
        if (!kend) return -2;
        edged_str k = { (const char *)p + 1, (uint32_t)(kend - p - 2) };
        p = edged__ws(kend, end);
        if (p == end || *p != ':') return -2;
        p = edged__ws(p + 1, end);
        const unsigned char *vend = edged__skip_value(p, end);
        if (!vend) return -2;
        if (edged_str_eq(k, want)) {
            edged_str v = { (const char *)p, (uint32_t)(vend - p) };
            if (*p != '"' && *p != '{' && *p != '[' && !edged__scalar_ok(v)) return -2;
            *raw = v;
            return 0;
        }
        p = edged__ws(vend, end);
        if (p == end) return -2;
        if (*p == '}') return -1;
        if (*p != ',') return -2;
        p = edged__ws(p + 1, end);
    }
}

/* ---- string builder ---------------------------------------------------- */

EDGED__API void edged_buf_init(edged_buf *b, char *storage, uint32_t cap)
{
    b->ptr = storage;
    b->len = 0;
    b->cap = cap;
    b->failed = 0;
}

EDGED__API void edged_buf_reset(edged_buf *b)
{
    b->len = 0;
    b->failed = 0;
}

EDGED__API edged_str edged_buf_str(const edged_buf *b)
{
    edged_str s = { b->ptr, b->len };
    return s;
}

/* Every append is all or nothing: 0 appended, -1 refused (and b->failed set).
 * After a failure further appends are refused too, so a half-built payload
 * can never look complete. */
EDGED__API int edged_buf_bytes(edged_buf *b, const void *data, uint32_t n)
{
    if (b->failed || n > b->cap - b->len) {
        b->failed = 1;
        return -1;
    }
    memcpy(b->ptr + b->len, data, n);
    b->len += n;
    return 0;
}

EDGED__API int edged_buf_append(edged_buf *b, edged_str s)
{
    return edged_buf_bytes(b, s.ptr, s.len);
}

EDGED__API int edged_buf_cstr(edged_buf *b, const char *s)
{
    return edged_buf_append(b, edged_cstr(s));
}

EDGED__API int edged_buf_char(edged_buf *b, char c)
{
    return edged_buf_bytes(b, &c, 1);
}

EDGED__API int edged_buf_int(edged_buf *b, int64_t v)
{
    char tmp[20];
    int n = sizeof tmp;
    /* Negate in unsigned arithmetic so INT64_MIN has a magnitude. */
    uint64_t m = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--n] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (v < 0) tmp[--n] = '-';
    return edged_buf_bytes(b, tmp + n, (uint32_t)(sizeof tmp - n));
}

/* Fixed-point text with exactly `decimals` digits after the point (none and
 * no point for 0), no exponent. The digits are those of the exact binary
 * value of v, rounded half away from zero: 0.125 -> "0.13", while 2.675
 * (stored as 2.67499999...) -> "2.67". That equals Python's format(v, ".Nf")
 * except on exact ties, where Python rounds half to even. A result that
 * rounds to zero prints without a sign. Refused (-1): |v| >= 1e15, NaN,
 * infinities, decimals outside 0..20. */
EDGED__API int edged_buf_fixed(edged_buf *b, double v, int decimals)
{
    char tmp[1 + 16 + 1 + EDGED_FIXED_MAX_DECIMALS];
    unsigned char dig[EDGED_FIXED_MAX_DECIMALS];
    uint64_t limb[4] = { 0, 0, 0, 0 };  /* fraction as 0.128 fixed point, 32 bits per limb */
    int n = 0;

    if (decimals < 0 || decimals > EDGED_FIXED_MAX_DECIMALS || !(v > -EDGED_FIXED_LIMIT && v < EDGED_FIXED_LIMIT)) {
        b->failed = 1;
        return -1;
    }
    int neg = v < 0;
    double a = neg ? -v : v;
    uint64_t ip = (uint64_t)a;
    /* Below 2^-75 every printable digit is 0 and the remainder is far from a
     * half; from there up, the fraction's lowest bit is at least 2^-127, so
     * 128 bits hold it exactly and every digit and the rounding are exact. */
    if (a >= 0x1p-75) {
        /* Each subtraction removes an integer part, which is exact. */
        double frac = a - (double)ip;
        double x = frac * 0x1p64;
        uint64_t hi = (uint64_t)x;
        uint64_t lo = (uint64_t)((x - (double)hi) * 0x1p64);
        limb[0] = lo & 0xffffffffu;
        limb[1] = lo >> 32;
        limb[2] = hi & 0xffffffffu;
        limb[3] = hi >> 32;
    }
    for (int i = 0; i < decimals; i++) {
        uint64_t carry = 0;
        for (int k = 0; k < 4; k++) {
            uint64_t t = limb[k] * 10 + carry;
            limb[k] = t & 0xffffffffu;
            carry = t >> 32;
        }
        dig[i] = (unsigned char)carry;
    }
    if (limb[3] >> 31) {    /* what is left is at least one half */
        int i = decimals - 1;
        while (i >= 0 && dig[i] == 9)
            dig[i--] = 0;
        if (i >= 0) dig[i]++;
        else ip++;
    }
    int nonzero = ip != 0;
    for (int i = 0; i < decimals; i++)
        if (dig[i]) nonzero = 1;

    if (neg && nonzero) tmp[n++] = '-';
    char rev[16];
    int r = 0;
    do {
        rev[r++] = (char)('0' + ip % 10);
        ip /= 10;
    } while (ip);
    while (r)
        tmp[n++] = rev[--r];
    if (decimals > 0) {
        tmp[n++] = '.';
        for (int i = 0; i < decimals; i++)
            tmp[n++] = (char)('0' + dig[i]);
    }
    return edged_buf_bytes(b, tmp, (uint32_t)n);
}

/* s as a JSON string, quotes included. Bytes >= 0x80 pass through, so the
 * result is valid JSON whenever s is valid UTF-8 (MQTT topics are). */
EDGED__API int edged_buf_json_string(edged_buf *b, edged_str s)
{
    static const char hex[] = "0123456789abcdef";
    uint32_t start = b->len;
    edged_buf_char(b, '"');
    for (uint32_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\') {
            edged_buf_char(b, '\\');
            edged_buf_char(b, (char)c);
        } else if (c == '\n') {
            edged_buf_cstr(b, "\\n");
        } else if (c == '\r') {
            edged_buf_cstr(b, "\\r");
        } else if (c == '\t') {
            edged_buf_cstr(b, "\\t");
        } else if (c < 0x20) {
            char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            edged_buf_bytes(b, u, 6);
        } else {
            edged_buf_char(b, (char)c);
        }
    }
    edged_buf_char(b, '"');
    if (b->failed) {
        /* Keep the all-or-nothing promise of the other appends. */
        if (b->len > start) b->len = start;
        return -1;
    }
    return 0;
}

/* ---- state blobs ------------------------------------------------------- */

/* Every value is little-endian; edged_put_bytes writes a u32 length and then
 * the bytes. All or nothing, like edged_buf: 0 appended, -1 refused. */
EDGED__API int edged_put_raw(edged_writer *w, const void *data, uint32_t n)
{
    if (w->failed || n > w->cap - w->len) {
        w->failed = 1;
        return -1;
    }
    memcpy(w->ptr + w->len, data, n);
    w->len += n;
    return 0;
}

EDGED__API int edged_put_u8(edged_writer *w, uint8_t v)
{
    return edged_put_raw(w, &v, 1);
}

/* wasm32 is little-endian: a value's own bytes are the blob's. */
EDGED__API int edged_put_u32(edged_writer *w, uint32_t v)
{
    return edged_put_raw(w, &v, 4);
}

EDGED__API int edged_put_u64(edged_writer *w, uint64_t v)
{
    return edged_put_raw(w, &v, 8);
}

EDGED__API int edged_put_f64(edged_writer *w, double v)
{
    return edged_put_raw(w, &v, 8);
}

EDGED__API int edged_put_bytes(edged_writer *w, edged_str s)
{
    if (w->failed || s.len > w->cap - w->len || w->cap - w->len - s.len < 4) {
        w->failed = 1;
        return -1;
    }
    edged_put_u32(w, s.len);
    return edged_put_raw(w, s.ptr, s.len);
}

/* 0 and *out set, or -1 (past the end, or an earlier read failed). */
EDGED__API int edged_get_raw(edged_reader *r, void *out, uint32_t n)
{
    if (r->failed || n > r->len - r->pos) {
        r->failed = 1;
        return -1;
    }
    memcpy(out, r->ptr + r->pos, n);
    r->pos += n;
    return 0;
}

EDGED__API int edged_get_u8(edged_reader *r, uint8_t *out)
{
    return edged_get_raw(r, out, 1);
}

EDGED__API int edged_get_u32(edged_reader *r, uint32_t *out)
{
    return edged_get_raw(r, out, 4);
}

EDGED__API int edged_get_u64(edged_reader *r, uint64_t *out)
{
    return edged_get_raw(r, out, 8);
}

EDGED__API int edged_get_f64(edged_reader *r, double *out)
{
    return edged_get_raw(r, out, 8);
}

/* A length-prefixed byte string; *out points into the blob, which the next
 * load or save overwrites: copy what you keep. */
EDGED__API int edged_get_bytes(edged_reader *r, edged_str *out)
{
    uint32_t n;
    uint32_t at = r->pos;
    if (edged_get_u32(r, &n) != 0) return -1;
    if (n > r->len - r->pos) {
        r->pos = at;
        r->failed = 1;
        return -1;
    }
    out->ptr = (const char *)r->ptr + r->pos;
    out->len = n;
    r->pos += n;
    return 0;
}

/* 1 when every byte was read and no read failed. */
EDGED__API int edged_get_done(const edged_reader *r)
{
    return !r->failed && r->pos == r->len;
}

/* ---- ABI entry points -------------------------------------------------- */

__attribute__((export_name("edged_abi_version")))
int32_t edged_abi_version(void)
{
    return 1;
}

__attribute__((export_name("edged_buffers")))
int32_t edged_buffers(void)
{
    return (int32_t)(uintptr_t)&edged__desc;
}

static int edged__bad_params(const char *why)
{
    edged__pcount = 0;
    edged_log(EDGED_LOG_ERROR, why);
    return EDGED_INIT_BAD_PARAMS;
}

/* Exported even without EDGED_WITH_INIT: a module without edged_init may not
 * be given params at all, and every SDK filter should accept them. */
__attribute__((export_name("edged_init")))
int32_t edged_init(uint32_t params_len)
{
    edged__pcount = 0;
    if (params_len > EDGED_INPUT_CAP)
        return edged__bad_params("edged: params_len exceeds the input area");
    if (params_len > EDGED_PARAMS_CAP)
        return edged__bad_params("edged: params exceed EDGED_PARAMS_CAP");
    memcpy(edged__pstore, edged__in, params_len);
    uint32_t pos = 0;
    while (pos < params_len) {
        uint32_t k = pos, v;
        while (pos < params_len && edged__pstore[pos]) pos++;
        if (pos == params_len) return edged__bad_params("edged: params: key without NUL");
        v = ++pos;
        while (pos < params_len && edged__pstore[pos]) pos++;
        if (pos == params_len) return edged__bad_params("edged: params: value without NUL");
        if (edged__pcount == EDGED_MAX_PARAMS)
            return edged__bad_params("edged: more params than EDGED_MAX_PARAMS");
        edged__pkeys[edged__pcount].ptr = edged__pstore + k;
        edged__pkeys[edged__pcount].len = v - 1 - k;
        edged__pvals[edged__pcount].ptr = edged__pstore + v;
        edged__pvals[edged__pcount].len = pos - v;
        edged__pcount++;
        pos++;
    }
#ifdef EDGED_WITH_INIT
    return edged_filter_init();
#else
    return 0;
#endif
}

/* Result rule: if edged_emit succeeded at least once during the call, the
 * call returns EMIT and the input is not forwarded (emit it yourself to keep
 * it), unless the filter returns EDGED_REJECT (edged_reject), which keeps its
 * emitted records too. Otherwise the filter's return value is passed through
 * unchanged, so a stray code shows up as bad_result in the host's counters. */
__attribute__((export_name("edged_on_message")))
int32_t edged_on_message(uint32_t topic_len, uint32_t payload_len)
{
    /* The host promises the message fits; if it does not, a trap is the
     * loudest way to say so. */
    if (topic_len > EDGED_INPUT_CAP || payload_len > EDGED_INPUT_CAP - topic_len)
        __builtin_trap();
    edged__reset_output();
    edged_str topic = { (const char *)edged__in, topic_len };
    edged_str payload = { (const char *)edged__in + topic_len, payload_len };
    int r = edged_filter(topic, payload);
    return edged__emitted && r != EDGED_REJECT ? EDGED_EMIT : r;
}

#ifdef EDGED_WITH_TICK
__attribute__((export_name("edged_on_tick")))
int32_t edged_on_tick(int64_t now_ms)
{
    edged__reset_output();
    edged_filter_tick(now_ms);
    return edged__emitted ? EDGED_EMIT : 0;
}
#endif

#ifdef EDGED_WITH_STATE
/* One buffer serves both ways: a save is written here and the host copies
 * it out before the next call; a load is written here by the host and read
 * by edged_filter_load, on a fresh instance, before any message. */
static unsigned char edged__state[EDGED_STATE_CAP] __attribute__((aligned(8)));

static struct {
    unsigned char *ptr;
    uint32_t len;
    uint32_t format;
} edged__state_desc;
_Static_assert(sizeof(edged__state_desc) == 12, "state descriptor must be 12 bytes");

/* A state that does not fit is not saved at all: the trap makes the host
 * keep the last good one, where a truncated blob would lose data quietly. */
__attribute__((export_name("edged_state_save")))
int32_t edged_state_save(void)
{
    edged_writer w = { edged__state, 0, EDGED_STATE_CAP, 0 };
    uint32_t format = edged_filter_save(&w);
    if (w.failed) {
        edged_log(EDGED_LOG_ERROR, "edged: the state does not fit EDGED_STATE_CAP");
        __builtin_trap();
    }
    edged__state_desc.ptr = edged__state;
    edged__state_desc.len = w.len;
    edged__state_desc.format = format;
    return (int32_t)(uintptr_t)&edged__state_desc;
}

__attribute__((export_name("edged_state_buffer")))
int32_t edged_state_buffer(uint32_t len)
{
    return len > EDGED_STATE_CAP ? -1 : (int32_t)(uintptr_t)edged__state;
}

__attribute__((export_name("edged_state_load")))
int32_t edged_state_load(uint32_t format, uint32_t len)
{
    if (len > EDGED_STATE_CAP)
        __builtin_trap();
    edged_reader r = { edged__state, len, 0, 0 };
    int code = edged_filter_load(format, &r);
    if (code != 0) return code;
    if (r.failed) return EDGED_STATE_TRUNCATED;
    return r.pos == r.len ? 0 : EDGED_STATE_TRAILING;
}
#endif

#endif /* EDGED_H */
