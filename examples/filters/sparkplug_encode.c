/*
 * sparkplug_encode - JSON readings to Sparkplug B (Eclipse Sparkplug 3.0)
 * NDATA/DDATA, as the edge node `edge_node` of group `group` (params).
 * docs/sparkplug.md is the operator's guide.
 *
 * Input: a JSON object
 *   {"device": "D", "timestamp": 1733580000000,
 *    "metrics": [{"name": "Temp", "datatype": "Float", "value": 21.5}, ...]}
 * "device" absent: the edge node's own metrics (NDATA). "datatype" absent:
 * Boolean, String, Int64 or Double from the JSON value. "timestamp" (the
 * payload's, and per metric) is copied when given: the filter has no clock.
 *
 * Births: the first reading of the edge node is preceded by its NBIRTH
 * (seq 0, bdSeq, Node Control/Rebirth = false), the first reading of a
 * device by its DBIRTH; a reading that brings a metric its BIRTH did not
 * have is preceded by a new BIRTH of that node or device (a new NBIRTH is
 * followed by the DBIRTH of every known device). A BIRTH carries every known
 * metric of its node or device with its alias; those the reading does not
 * give are sent is_null. DATA then carries alias and value only. An NCMD
 * `Node Control/Rebirth` = true on spBv1.0/<group>/NCMD/<edge node> (route
 * it to this filter) makes it send the NBIRTH and every DBIRTH again.
 *
 * seq counts 0..255 over NBIRTH (0), DBIRTH, NDATA and DDATA of the node.
 * The metrics, aliases, seq and bdSeq are the filter's state (format 1).
 */
#define EDGED_WITH_INIT
#define EDGED_WITH_STATE
#define EDGED_STATE_CAP (200u * 1024u)
#include "edged.h"
#include "edged_json.h"
#include "edged_binary.h"
#include "sparkplug.h"

#define MAX_METRICS 4096        /* known metrics of the node and its devices */
#define MAX_DEVICES 256
#define POOL_CAP (96u * 1024u)  /* metric names and device ids */
#define MAX_READING 256         /* metrics in one reading */
#define STATE_FORMAT 1
#define NODE_SCOPE 0xffffu      /* the scope of the edge node's own metrics */

typedef struct {
    uint32_t name_off;
    uint16_t name_len;
    uint16_t scope;             /* device index or NODE_SCOPE */
    uint8_t datatype;
} known_t;

static known_t known[MAX_METRICS];
static uint32_t known_count;
static uint32_t dev_off[MAX_DEVICES];
static uint16_t dev_len[MAX_DEVICES];
static uint32_t dev_count;
static char pool[POOL_CAP];
static uint32_t pool_used;
static int node_born;
static uint32_t seq;            /* the next seq */
static uint64_t bdseq;

static edged_str group, edge_node;

/* ---- one reading ------------------------------------------------------- */

typedef struct {
    edged_str name;             /* raw JSON string text */
    int name_escaped;
    int datatype;               /* -1: from the value */
    int has_ts;
    uint64_t ts;
    edged_json_reader value;    /* positioned just before the value */
    int alias;                  /* index into known, once resolved */
} item_t;

static item_t items[MAX_READING];
static uint32_t item_count;
static int reading_has_ts;
static uint64_t reading_ts;
static edged_str reading_dev;
static uint32_t reading_scope;

static sp_metric metric;
static sp_payload out_payload;
static const char *why;
static char name_store[512];
static char reason_store[1024];
static char pb_store[EDGED_OUTPUT_CAP];
static char topic_store[1024];

static edged_str known_name(uint32_t i)
{
    return (edged_str){ pool + known[i].name_off, known[i].name_len };
}

static int find_known(uint32_t scope, edged_str name)
{
    for (uint32_t i = 0; i < known_count; i++)
        if (known[i].scope == scope && edged_str_eq(known_name(i), name)) return (int)i;
    return -1;
}

static int find_device(edged_str d)
{
    for (uint32_t i = 0; i < dev_count; i++)
        if (edged_str_eq((edged_str){ pool + dev_off[i], dev_len[i] }, d)) return (int)i;
    return -1;
}

static int pool_add(edged_str s, uint32_t *off)
{
    if (s.len > POOL_CAP - pool_used) return -1;
    memcpy(pool + pool_used, s.ptr, s.len);
    *off = pool_used;
    pool_used += s.len;
    return 0;
}

static int fail(const char *reason)
{
    why = reason;
    return -1;
}

/* An unsigned integer token (no sign, no fraction); 0 or -1. */
static int parse_u64(edged_str raw, uint64_t *out)
{
    uint64_t v = 0;
    if (raw.len == 0) return -1;
    for (uint32_t i = 0; i < raw.len; i++) {
        char c = raw.ptr[i];
        if (c < '0' || c > '9') return -1;
        if (v > (UINT64_MAX - (uint64_t)(c - '0')) / 10) return -1;
        v = v * 10 + (uint64_t)(c - '0');
    }
    *out = v;
    return 0;
}

/* An integer token as a two's complement 64-bit value with its sign. */
static int parse_int(const edged_json_token *t, int *neg, uint64_t *mag)
{
    edged_str raw = t->raw;
    if (t->type != EDGED_JSON_NUMBER || t->is_float) return -1;
    *neg = raw.len && raw.ptr[0] == '-';
    if (*neg) {
        raw.ptr++;
        raw.len--;
    }
    return parse_u64(raw, mag);
}

/* ---- reading the JSON reading ------------------------------------------- */

static int read_metric(edged_json_reader *j)
{
    edged_json_token t;
    item_t *it = &items[item_count];
    memset(it, 0, sizeof *it);
    it->datatype = -1;
    int has_value = 0;
    for (;;) {
        if (edged_json_next(j, &t) <= 0) return fail("malformed JSON");
        if (t.type == EDGED_JSON_OBJECT_END) break;
        edged_str key = t.raw;
        edged_json_reader before = *j;
        if (edged_json_next(j, &t) <= 0) return fail("malformed JSON");
        if (edged_str_eq(key, EDGED_LIT("name"))) {
            if (t.type != EDGED_JSON_STRING) return fail("a metric's name must be a string");
            it->name = t.raw;
            it->name_escaped = t.has_escapes;
        } else if (edged_str_eq(key, EDGED_LIT("datatype"))) {
            if (t.type != EDGED_JSON_STRING) return fail("a metric's datatype must be a string");
            it->datatype = sp_type_by_name(t.raw);
            if (it->datatype < 0) return fail("unknown datatype (see docs/sparkplug.md)");
        } else if (edged_str_eq(key, EDGED_LIT("timestamp"))) {
            if (t.type != EDGED_JSON_NUMBER || parse_u64(t.raw, &it->ts))
                return fail("a timestamp must be a non-negative integer (ms)");
            it->has_ts = 1;
        } else if (edged_str_eq(key, EDGED_LIT("value"))) {
            it->value = before;
            has_value = 1;
        }
        if (edged_json_skip_rest(j, &t) != 0) return fail("malformed JSON");
    }
    if (it->name.len == 0) return fail("a metric without a name");
    if (!has_value) return fail("a metric without a value");
    item_count++;
    return 0;
}

static int read_reading(edged_str payload)
{
    edged_json_reader j;
    edged_json_token t;
    edged_json_reader_init(&j, payload);
    item_count = 0;
    reading_has_ts = 0;
    reading_dev = (edged_str){ 0, 0 };
    if (edged_json_next(&j, &t) <= 0 || t.type != EDGED_JSON_OBJECT)
        return fail("the reading is not a JSON object");
    int has_metrics = 0;
    for (;;) {
        if (edged_json_next(&j, &t) <= 0) return fail("malformed JSON");
        if (t.type == EDGED_JSON_OBJECT_END) break;
        edged_str key = t.raw;
        if (edged_json_next(&j, &t) <= 0) return fail("malformed JSON");
        if (edged_str_eq(key, EDGED_LIT("device"))) {
            if (t.type != EDGED_JSON_STRING || t.has_escapes || t.raw.len == 0 || t.raw.len > 255)
                return fail("device must be a plain string of 1..255 bytes");
            if (!edged_topic_valid(t.raw)) return fail("device may not hold '+', '#' or NUL");
            for (uint32_t i = 0; i < t.raw.len; i++)
                if (t.raw.ptr[i] == '/') return fail("device may not hold '/'");
            reading_dev = t.raw;
        } else if (edged_str_eq(key, EDGED_LIT("timestamp"))) {
            if (t.type != EDGED_JSON_NUMBER || parse_u64(t.raw, &reading_ts))
                return fail("timestamp must be a non-negative integer (ms)");
            reading_has_ts = 1;
        } else if (edged_str_eq(key, EDGED_LIT("metrics"))) {
            if (t.type != EDGED_JSON_ARRAY) return fail("metrics must be an array");
            has_metrics = 1;
            for (;;) {
                if (edged_json_next(&j, &t) <= 0) return fail("malformed JSON");
                if (t.type == EDGED_JSON_ARRAY_END) break;
                if (t.type != EDGED_JSON_OBJECT) return fail("a metric must be an object");
                if (item_count == MAX_READING) return fail("more than 256 metrics in a reading");
                if (read_metric(&j) != 0) return -1;
            }
            continue;
        } else if (edged_json_skip_rest(&j, &t) != 0) {
            return fail("malformed JSON");
        }
    }
    if (edged_json_next(&j, &t) != EDGED_JSON_EOF) return fail("malformed JSON");
    if (!has_metrics || item_count == 0) return fail("no metrics");
    return 0;
}

/* The datatype a JSON value gives when the reading does not say. */
static int natural_type(const item_t *it)
{
    edged_json_reader j = it->value;
    edged_json_token t;
    if (edged_json_next(&j, &t) <= 0) return SP_UNKNOWN;
    switch (t.type) {
    case EDGED_JSON_TRUE: case EDGED_JSON_FALSE: return SP_BOOLEAN;
    case EDGED_JSON_STRING: return SP_STRING;
    case EDGED_JSON_NUMBER: return t.is_float ? SP_DOUBLE : SP_INT64;
    default: return SP_UNKNOWN;
    }
}

/* ---- one metric into the protobuf -------------------------------------- */

/* An integer of datatype dt as it travels: *v, in long_value when *is_long,
 * else in int_value. Sparkplug 3.0: Int8..Int32 and UInt8..UInt32 in
 * int_value (two's complement of their own width), the 64-bit ones and
 * DateTime in long_value. */
static int int_bits(uint32_t dt, int neg, uint64_t mag, uint64_t *v, int *is_long)
{
    int bits = 0, sign = 0;
    switch (dt) {
    case SP_INT8: bits = 8; sign = 1; break;
    case SP_INT16: bits = 16; sign = 1; break;
    case SP_INT32: bits = 32; sign = 1; break;
    case SP_INT64: bits = 64; sign = 1; break;
    case SP_UINT8: bits = 8; break;
    case SP_UINT16: bits = 16; break;
    case SP_UINT32: bits = 32; break;
    case SP_UINT64: case SP_DATETIME: bits = 64; break;
    default: return -1;
    }
    uint64_t hi = sign ? ((uint64_t)1 << (bits - 1)) - 1
                       : (bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1);
    uint64_t lo_mag = sign ? (uint64_t)1 << (bits - 1) : 0;
    if (neg ? mag > lo_mag : mag > hi) return fail("an integer outside its datatype's range");
    uint64_t x = neg ? 0 - mag : mag;
    if (bits < 64) x &= ((uint64_t)1 << bits) - 1;
    *v = x;
    *is_long = bits == 64;
    return 0;
}

static int put_int(uint32_t dt, int neg, uint64_t mag, sp_metric *m)
{
    uint64_t v;
    int is_long;
    if (int_bits(dt, neg, mag, &v, &is_long) != 0) return -1;
    if (is_long) {
        m->which_value = SP_TAG(long_value);
        m->value.long_value = v;
    } else {
        m->which_value = SP_TAG(int_value);
        m->value.int_value = (uint32_t)v;
    }
    return 0;
}

static int number(const edged_json_token *t, double *d)
{
    if (t->type != EDGED_JSON_NUMBER || edged_parse_double(t->raw, d) != 0)
        return fail("a number was expected");
    return 0;
}

static int to_float(double d, float *f)
{
    if (d > 3.4028234663852886e38 || d < -3.4028234663852886e38)
        return fail("a Float outside the float range");
    *f = (float)d;
    return 0;
}

static int put_number(uint32_t dt, const edged_json_token *t, sp_metric *m)
{
    double d;
    if (number(t, &d) != 0) return -1;
    if (dt == SP_FLOAT) {
        m->which_value = SP_TAG(float_value);
        return to_float(d, &m->value.float_value);
    }
    m->which_value = SP_TAG(double_value);
    m->value.double_value = d;
    return 0;
}

/* Appends one array element to the metric's bytes_value. */
static int put_element(uint32_t dt, const edged_json_token *t, edged_buf *b)
{
    static const uint8_t scalar[] = {
        [SP_INT8_ARRAY] = SP_INT8, [SP_INT16_ARRAY] = SP_INT16, [SP_INT32_ARRAY] = SP_INT32,
        [SP_INT64_ARRAY] = SP_INT64, [SP_UINT8_ARRAY] = SP_UINT8, [SP_UINT16_ARRAY] = SP_UINT16,
        [SP_UINT32_ARRAY] = SP_UINT32, [SP_UINT64_ARRAY] = SP_UINT64, [SP_DATETIME_ARRAY] = SP_UINT64,
    };
    double d;
    if (dt == SP_FLOAT_ARRAY) {
        float f;
        if (number(t, &d) != 0 || to_float(d, &f) != 0) return -1;
        return edged_buf_bytes(b, &f, 4);
    }
    if (dt == SP_DOUBLE_ARRAY) {
        if (number(t, &d) != 0) return -1;
        return edged_buf_bytes(b, &d, 8);
    }
    int neg, is_long;
    uint64_t mag, v;
    if (parse_int(t, &neg, &mag) != 0) return fail("an array element must be an integer");
    if (int_bits(scalar[dt], neg, mag, &v, &is_long) != 0) return -1;
    return edged_buf_bytes(b, &v, sp_array_width(dt));     /* wasm32 is little-endian */
}

static int put_value(const item_t *it, uint32_t dt, sp_metric *m)
{
    edged_json_reader j = it->value;
    edged_json_token t;
    if (edged_json_next(&j, &t) <= 0) return fail("malformed JSON");
    if (t.type == EDGED_JSON_NULL) {
        m->has_is_null = true;
        m->is_null = true;
        return 0;
    }
    int neg;
    uint64_t mag;
    edged_buf b;
    switch (dt) {
    case SP_INT8: case SP_INT16: case SP_INT32: case SP_INT64:
    case SP_UINT8: case SP_UINT16: case SP_UINT32: case SP_UINT64: case SP_DATETIME:
        if (parse_int(&t, &neg, &mag) != 0) return fail("an integer was expected");
        return put_int(dt, neg, mag, m);
    case SP_FLOAT: case SP_DOUBLE:
        return put_number(dt, &t, m);
    case SP_BOOLEAN:
        if (t.type != EDGED_JSON_TRUE && t.type != EDGED_JSON_FALSE) return fail("true or false was expected");
        m->which_value = SP_TAG(boolean_value);
        m->value.boolean_value = t.type == EDGED_JSON_TRUE;
        return 0;
    case SP_STRING: case SP_TEXT: case SP_UUID:
        if (t.type != EDGED_JSON_STRING) return fail("a string was expected");
        edged_buf_init(&b, m->value.string_value, sizeof m->value.string_value - 1);
        if (edged_buf_json_unescape(&b, t.raw) != 0) return fail("a string over 16 KiB, or bad escapes");
        for (uint32_t i = 0; i < b.len; i++)
            if (b.ptr[i] == 0) return fail("a string holding NUL");
        m->value.string_value[b.len] = 0;
        m->which_value = SP_TAG(string_value);
        return 0;
    case SP_BYTES: case SP_FILE:
        if (t.type != EDGED_JSON_STRING) return fail("base64 text was expected");
        edged_buf_init(&b, (char *)m->value.bytes_value.bytes, sizeof m->value.bytes_value.bytes);
        if (edged_buf_unbase64(&b, t.raw) != 0) return fail("not base64, or over 16 KiB");
        m->value.bytes_value.size = (pb_size_t)b.len;
        m->which_value = SP_TAG(bytes_value);
        return 0;
    default:
        break;
    }
    if (dt < SP_INT8_ARRAY || dt > SP_DATETIME_ARRAY)
        return fail("DataSet, Template and PropertySet values are not encoded by this filter");
    if (t.type != EDGED_JSON_ARRAY) return fail("an array was expected");
    edged_buf_init(&b, (char *)m->value.bytes_value.bytes, sizeof m->value.bytes_value.bytes);
    uint32_t count = 0;
    static unsigned char bits[16384 - 4];
    if (dt == SP_BOOLEAN_ARRAY) memset(bits, 0, sizeof bits);
    for (;;) {
        if (edged_json_next(&j, &t) <= 0) return fail("malformed JSON");
        if (t.type == EDGED_JSON_ARRAY_END) break;
        if (dt == SP_BOOLEAN_ARRAY) {
            if (t.type != EDGED_JSON_TRUE && t.type != EDGED_JSON_FALSE) return fail("true or false was expected");
            if (count / 8 >= sizeof bits) return fail("an array over 16 KiB");
            if (t.type == EDGED_JSON_TRUE) bits[count / 8] |= (unsigned char)(0x80 >> (count % 8));
        } else if (dt == SP_STRING_ARRAY) {
            if (t.type != EDGED_JSON_STRING) return fail("a string was expected");
            uint32_t at = b.len;
            if (edged_buf_json_unescape(&b, t.raw) != 0) return fail("an array over 16 KiB, or bad escapes");
            for (uint32_t i = at; i < b.len; i++)
                if (b.ptr[i] == 0) return fail("a string holding NUL");
            edged_buf_char(&b, 0);
        } else if (put_element(dt, &t, &b) != 0) {
            return -1;
        }
        count++;
    }
    if (dt == SP_BOOLEAN_ARRAY) {
        uint32_t n = (count + 7) / 8;
        edged_buf_bytes(&b, &count, 4);
        edged_buf_bytes(&b, bits, n);
    }
    if (b.failed) return fail("an array over 16 KiB");
    m->value.bytes_value.size = (pb_size_t)b.len;
    m->which_value = SP_TAG(bytes_value);
    return 0;
}

/* ---- payloads ------------------------------------------------------------ */

enum { MODE_DATA, MODE_BIRTH };
static int mode;
static uint32_t birth_scope;
static int reading_in_birth;    /* the reading's values go into this birth */

/* Every field unset, without a memset of the metric's 18 KiB (which cost
 * ~100 k fuel a metric with the SDK's byte loop). */
static void clear_metric(void)
{
    metric.has_name = false;
    metric.name[0] = 0;
    metric.has_alias = false;
    metric.has_timestamp = false;
    metric.has_datatype = false;
    metric.has_is_historical = false;
    metric.has_is_transient = false;
    metric.has_is_null = false;
    metric.is_null = false;
    metric.has_properties = false;
    metric.which_value = 0;
}

static void base_metric(uint32_t alias_ix, int with_name)
{
    clear_metric();
    metric.has_alias = true;
    metric.alias = alias_ix + 1;
    if (with_name) {
        edged_str n = known_name(alias_ix);
        metric.has_name = true;
        memcpy(metric.name, n.ptr, n.len);
        metric.name[n.len] = 0;
        metric.has_datatype = true;
        metric.datatype = known[alias_ix].datatype;
    }
}

static const item_t *item_for(uint32_t alias_ix)
{
    for (uint32_t i = 0; i < item_count; i++)
        if (items[i].alias == (int)alias_ix) return &items[i];
    return 0;
}

static bool encode_metrics(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    (void)arg;
    if (mode == MODE_DATA) {
        for (uint32_t i = 0; i < item_count; i++) {
            const item_t *it = &items[i];
            base_metric((uint32_t)it->alias, 0);
            if (it->has_ts || reading_has_ts) {
                metric.has_timestamp = true;
                metric.timestamp = it->has_ts ? it->ts : reading_ts;
            }
            if (put_value(it, known[it->alias].datatype, &metric) != 0) return false;
            if (!sp_encode_metric(stream, field, &metric)) return false;
        }
        return true;
    }
    if (birth_scope == NODE_SCOPE) {
        static const char bd[] = "bdSeq", rb[] = "Node Control/Rebirth";
        clear_metric();
        metric.has_name = true;
        memcpy(metric.name, bd, sizeof bd);
        metric.has_datatype = true;
        metric.datatype = SP_INT64;
        metric.which_value = SP_TAG(long_value);
        metric.value.long_value = bdseq;
        if (!sp_encode_metric(stream, field, &metric)) return false;
        memcpy(metric.name, rb, sizeof rb);
        metric.datatype = SP_BOOLEAN;
        metric.which_value = SP_TAG(boolean_value);
        metric.value.boolean_value = false;
        if (!sp_encode_metric(stream, field, &metric)) return false;
    }
    for (uint32_t k = 0; k < known_count; k++) {
        if (known[k].scope != birth_scope) continue;
        base_metric(k, 1);
        const item_t *it = reading_in_birth ? item_for(k) : 0;
        if (it) {
            if (it->has_ts || reading_has_ts) {
                metric.has_timestamp = true;
                metric.timestamp = it->has_ts ? it->ts : reading_ts;
            }
            if (put_value(it, known[k].datatype, &metric) != 0) return false;
        } else {
            metric.has_is_null = true;
            metric.is_null = true;
        }
        if (!sp_encode_metric(stream, field, &metric)) return false;
    }
    return true;
}

static int emit_payload(const char *type, uint32_t scope, int with_seq)
{
    edged_buf b, tb;
    edged_buf_init(&b, pb_store, sizeof pb_store);
    edged_buf_init(&tb, topic_store, sizeof topic_store);
    memset(&out_payload, 0, sizeof out_payload);
    if (reading_has_ts) {
        out_payload.has_timestamp = true;
        out_payload.timestamp = reading_ts;
    }
    if (with_seq) {
        out_payload.has_seq = true;
        out_payload.seq = seq;
    }
    out_payload.metrics.funcs.encode = encode_metrics;
    pb_ostream_t os = sp_ostream(&b);
    if (!pb_encode(&os, SP_PAYLOAD_FIELDS, &out_payload)) {
        if (!why) why = "the payload does not fit the output area";
        return -1;
    }
    edged_buf_cstr(&tb, "spBv1.0/");
    edged_buf_append(&tb, group);
    edged_buf_char(&tb, '/');
    edged_buf_cstr(&tb, type);
    edged_buf_char(&tb, '/');
    edged_buf_append(&tb, edge_node);
    if (scope != NODE_SCOPE) {
        edged_buf_char(&tb, '/');
        edged_buf_append(&tb, (edged_str){ pool + dev_off[scope], dev_len[scope] });
    }
    if (tb.failed || edged_emit(edged_buf_str(&tb), edged_buf_str(&b)) != 0)
        return fail("the messages do not fit the output area");
    if (with_seq) seq = (seq + 1) & 255;
    return 0;
}

static int emit_birth(uint32_t scope, int with_reading)
{
    mode = MODE_BIRTH;
    birth_scope = scope;
    reading_in_birth = with_reading;
    if (scope == NODE_SCOPE) {
        seq = 0;
        if (emit_payload("NBIRTH", scope, 1) != 0) return -1;
        bdseq = (bdseq + 1) & 255;
        return 0;
    }
    return emit_payload("DBIRTH", scope, 1);
}

/* NBIRTH, then the DBIRTH of every device (the reading's values where they
 * belong, the others null). */
static int emit_all_births(int with_reading)
{
    if (emit_birth(NODE_SCOPE, with_reading && reading_scope == NODE_SCOPE) != 0) return -1;
    node_born = 1;
    for (uint32_t d = 0; d < dev_count; d++)
        if (emit_birth(d, with_reading && reading_scope == d) != 0) return -1;
    return 0;
}

/* What a refused reading must not leave behind: metrics and devices it
 * added, and the seq, bdSeq and birth of payloads that are not sent. */
static struct {
    uint32_t known_count, dev_count, pool_used, seq;
    uint64_t bdseq;
    int node_born;
} undo;

static void remember(void)
{
    undo.known_count = known_count;
    undo.dev_count = dev_count;
    undo.pool_used = pool_used;
    undo.seq = seq;
    undo.bdseq = bdseq;
    undo.node_born = node_born;
}

static int refuse(const char *prefix_text)
{
    known_count = undo.known_count;
    dev_count = undo.dev_count;
    pool_used = undo.pool_used;
    seq = undo.seq;
    bdseq = undo.bdseq;
    node_born = undo.node_born;
    edged__reset_output();
    edged_buf r;
    edged_buf_init(&r, reason_store, sizeof reason_store);
    edged_buf_cstr(&r, prefix_text);
    edged_buf_cstr(&r, why ? why : "refused");
    return edged_reject(edged_buf_str(&r));
}

/* An NCMD for this node asking for a rebirth: 1, else 0. */
static int is_rebirth_request(edged_str topic)
{
    sp_topic st;
    if (sp_parse_topic(topic, &st) != 0 || st.type != SP_NCMD) return 0;
    if (!edged_str_eq(st.group, group) || !edged_str_eq(st.node, edge_node)) return 0;
    return 1;
}

static bool find_rebirth(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    if (!pb_decode(stream, SP_METRIC_FIELDS, &metric)) return false;
    if (metric.has_name && edged_str_eq(edged_cstr(metric.name), EDGED_LIT("Node Control/Rebirth")) &&
        metric.which_value == SP_TAG(boolean_value) && metric.value.boolean_value)
        *(int *)*arg = 1;
    return true;
}

static int edged_filter(edged_str topic, edged_str payload)
{
    why = 0;
    remember();
    if (is_rebirth_request(topic)) {
        int asked = 0;
        pb_istream_t s = pb_istream_from_buffer((const pb_byte_t *)payload.ptr, payload.len);
        memset(&out_payload, 0, sizeof out_payload);
        out_payload.metrics.funcs.decode = find_rebirth;
        out_payload.metrics.arg = &asked;
        if (!pb_decode(&s, SP_PAYLOAD_FIELDS, &out_payload)) {
            why = "not a Sparkplug B payload";
            return refuse("NCMD: ");
        }
        if (!asked) return EDGED_DROP;
        item_count = 0;
        reading_has_ts = out_payload.has_timestamp;
        reading_ts = out_payload.timestamp;
        if (emit_all_births(0) != 0) return refuse("rebirth: ");
        return EDGED_EMIT;
    }
    if (read_reading(payload) != 0) return refuse("reading: ");
    if (reading_dev.len) {
        int d = find_device(reading_dev);
        if (d < 0) {
            if (dev_count == MAX_DEVICES) {
                why = "more than 256 devices";
                return refuse("reading: ");
            }
            if (pool_add(reading_dev, &dev_off[dev_count]) != 0) {
                why = "the name pool is full (96 KiB)";
                return refuse("reading: ");
            }
            dev_len[dev_count] = (uint16_t)reading_dev.len;
            d = (int)dev_count++;
        }
        reading_scope = (uint32_t)d;
    } else {
        reading_scope = NODE_SCOPE;
    }
    /* Resolve every metric; new ones join the known table (and need a birth). */
    int new_metric = 0;
    for (uint32_t i = 0; i < item_count; i++) {
        item_t *it = &items[i];
        edged_buf nb;
        edged_buf_init(&nb, name_store, 255);
        if (edged_buf_json_unescape(&nb, it->name) != 0 || nb.len == 0)
            return why = "a metric name over 255 bytes, or bad escapes", refuse("reading: ");
        for (uint32_t k = 0; k < nb.len; k++)
            if (nb.ptr[k] == 0) return why = "a metric name holding NUL", refuse("reading: ");
        edged_str name = edged_buf_str(&nb);
        int k = find_known(reading_scope, name);
        int dt = it->datatype >= 0 ? it->datatype : (k >= 0 ? known[k].datatype : natural_type(it));
        if (dt == SP_UNKNOWN) return why = "a null value needs a datatype", refuse("reading: ");
        if (k >= 0 && known[k].datatype != dt)
            return why = "a metric's datatype differs from its BIRTH's", refuse("reading: ");
        if (k < 0) {
            if (known_count == MAX_METRICS) return why = "more than 4096 metrics", refuse("reading: ");
            known_t *e = &known[known_count];
            if (pool_add(name, &e->name_off) != 0)
                return why = "the name pool is full (96 KiB)", refuse("reading: ");
            e->name_len = (uint16_t)name.len;
            e->scope = (uint16_t)reading_scope;
            e->datatype = (uint8_t)dt;
            k = (int)known_count++;
            new_metric = 1;
        }
        it->alias = k;
    }
    /* Births first when needed; the reading then goes out as DATA unless
     * its birth already carried its values. */
    if (!node_born || (new_metric && reading_scope == NODE_SCOPE)) {
        if (emit_all_births(1) != 0) return refuse("reading: ");
        return EDGED_EMIT;
    }
    if (new_metric) {
        if (emit_birth(reading_scope, 1) != 0) return refuse("reading: ");
        return EDGED_EMIT;
    }
    mode = MODE_DATA;
    if (emit_payload(reading_scope == NODE_SCOPE ? "NDATA" : "DDATA", reading_scope, 1) != 0)
        return refuse("reading: ");
    return EDGED_EMIT;
}

/* ---- params and state ---------------------------------------------------- */

static int id_ok(edged_str s)
{
    if (s.len == 0 || s.len > 64 || !edged_topic_valid(s)) return 0;
    for (uint32_t i = 0; i < s.len; i++)
        if (s.ptr[i] == '/') return 0;
    return 1;
}

static int edged_filter_init(void)
{
    group = edged_param("group");
    edge_node = edged_param("edge_node");
    if (!id_ok(group) || !id_ok(edge_node)) {
        edged_log(EDGED_LOG_ERROR, "sparkplug_encode: params group and edge_node are required: "
                                   "1..64 bytes without '/', '+', '#' or NUL");
        return 1;
    }
    return 0;
}

static uint32_t edged_filter_save(edged_writer *w)
{
    edged_put_u8(w, (uint8_t)node_born);
    edged_put_u32(w, seq);
    edged_put_u64(w, bdseq);
    edged_put_u32(w, dev_count);
    for (uint32_t d = 0; d < dev_count; d++)
        edged_put_bytes(w, (edged_str){ pool + dev_off[d], dev_len[d] });
    edged_put_u32(w, known_count);
    for (uint32_t k = 0; k < known_count; k++) {
        edged_put_u32(w, known[k].scope);
        edged_put_u8(w, known[k].datatype);
        edged_put_bytes(w, known_name(k));
    }
    return STATE_FORMAT;
}

static int edged_filter_load(uint32_t format, edged_reader *r)
{
    uint8_t born;
    uint32_t n;
    if (format != STATE_FORMAT) return 1;
    edged_get_u8(r, &born);
    edged_get_u32(r, &seq);
    edged_get_u64(r, &bdseq);
    node_born = born;
    seq &= 255;
    if (edged_get_u32(r, &n) != 0 || n > MAX_DEVICES) return 2;
    for (uint32_t d = 0; d < n; d++) {
        edged_str s;
        if (edged_get_bytes(r, &s) || s.len == 0 || s.len > 255 || pool_add(s, &dev_off[d])) return 3;
        dev_len[d] = (uint16_t)s.len;
        dev_count++;
    }
    if (edged_get_u32(r, &n) != 0 || n > MAX_METRICS) return 4;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t scope;
        uint8_t dt;
        edged_str s;
        if (edged_get_u32(r, &scope) || edged_get_u8(r, &dt) || edged_get_bytes(r, &s)) return 5;
        if ((scope != NODE_SCOPE && scope >= dev_count) || dt >= SP_DATATYPES || s.len == 0 ||
            s.len > 255 || pool_add(s, &known[k].name_off))
            return 5;
        known[k].name_len = (uint16_t)s.len;
        known[k].scope = (uint16_t)scope;
        known[k].datatype = dt;
        known_count++;
    }
    return 0;
}
