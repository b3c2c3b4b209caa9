/*
 * sparkplug_decode - Sparkplug B (Eclipse Sparkplug 3.0) payloads to JSON,
 * one message per metric. docs/sparkplug.md is the operator's guide; this
 * file follows the specification's chapters "Topics and Messages" and
 * "Payloads" and its host application rules for aliases and rebirths.
 *
 * - NBIRTH/DBIRTH: every metric is emitted, and its alias (when it has one),
 *   name and datatype go into the alias table of its edge node (device).
 *   An NBIRTH forgets what the node and its devices had; a DBIRTH what the
 *   device had.
 * - NDATA/DDATA: every metric is emitted with its name and datatype resolved
 *   through the table. A metric whose alias (or name) was never in a BIRTH
 *   refuses the message (result REJECT, dead-lettered with the reason) and,
 *   once per edge node until its NBIRTH arrives (again after 10 s of payload
 *   time), emits an NCMD `Node Control/Rebirth` = true to
 *   spBv1.0/<group>/NCMD/<edge node>, as a host application does.
 * - NDEATH/DDEATH: one message saying the node or device died.
 * - NCMD, DCMD and STATE are dropped (the filter sees its own rebirth
 *   requests come back when it subscribes to spBv1.0/#).
 * - The seq of every message but NDEATH is checked against the last one of
 *   its edge node: a jump counts as a gap.
 *
 * The alias table, the per-node seq and rebirth marks and the counters are
 * the filter's state (format 1), so they survive swaps and restarts.
 */
#define EDGED_WITH_INIT
#define EDGED_WITH_TICK
#define EDGED_WITH_STATE
#define EDGED_STATE_CAP (240u * 1024u)
#include "edged.h"
#include "edged_json.h"
#include "edged_binary.h"
#include "sparkplug.h"

/* ---- limits (docs/sparkplug.md, "Limits") ------------------------------ */

#define MAX_NODES 256           /* edge nodes (group + edge node id) */
#define MAX_ID 64               /* bytes of a group, edge node or device id */
#define MAX_ALIASES 4096        /* metrics known from BIRTH certificates */
#define POOL_CAP (96u * 1024u)  /* their names and device ids */
#define SLOTS 8192              /* hash slots over (node, alias); a power of two */
#define REBIRTH_AGAIN_MS 10000  /* ask again after this much payload time */
#define STATE_FORMAT 1

typedef struct {
    char group[MAX_ID];
    char node[MAX_ID];
    uint8_t group_len, node_len;
    uint8_t rebirth_pending;
    int16_t last_seq;           /* -1: none seen since the last NBIRTH/NDEATH */
    uint64_t rebirth_ts;        /* payload time of the last request */
} node_t;

typedef struct {
    uint64_t alias;
    uint32_t name_off, dev_off;
    uint16_t node;
    uint16_t name_len;
    uint8_t dev_len;
    uint8_t datatype;
    uint8_t has_alias;
} entry_t;

static node_t nodes[MAX_NODES];
static uint32_t node_count;
static entry_t entries[MAX_ALIASES];
static uint32_t entry_count;
static char pool[POOL_CAP];
static uint32_t pool_used;
static char pool_scratch[POOL_CAP];
static int16_t slots[SLOTS];

static uint32_t rebirth_requests, seq_gaps, rejected;

static edged_str prefix;

/* ---- the alias table ---------------------------------------------------- */

static uint32_t slot_of(uint32_t node, uint64_t alias)
{
    uint64_t h = (alias ^ ((uint64_t)node << 48)) * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 40) & (SLOTS - 1);
}

static void rehash(void)
{
    for (uint32_t i = 0; i < SLOTS; i++)
        slots[i] = -1;
    for (uint32_t e = 0; e < entry_count; e++) {
        if (!entries[e].has_alias) continue;
        uint32_t s = slot_of(entries[e].node, entries[e].alias);
        while (slots[s] >= 0)
            s = (s + 1) & (SLOTS - 1);
        slots[s] = (int16_t)e;
    }
}

static int find_alias(uint32_t node, uint64_t alias)
{
    uint32_t s = slot_of(node, alias);
    while (slots[s] >= 0) {
        const entry_t *e = &entries[slots[s]];
        if (e->node == node && e->alias == alias) return slots[s];
        s = (s + 1) & (SLOTS - 1);
    }
    return -1;
}

static edged_str entry_name(const entry_t *e)
{
    return (edged_str){ pool + e->name_off, e->name_len };
}

static edged_str entry_dev(const entry_t *e)
{
    return (edged_str){ pool + e->dev_off, e->dev_len };
}

static int find_name(uint32_t node, edged_str dev, edged_str name)
{
    for (uint32_t e = 0; e < entry_count; e++)
        if (entries[e].node == node && edged_str_eq(entry_dev(&entries[e]), dev) &&
            edged_str_eq(entry_name(&entries[e]), name))
            return (int)e;
    return -1;
}

/* Forget the entries of a node (all its devices too when all_devices). */
static void forget(uint32_t node, edged_str dev, int all_devices)
{
    uint32_t kept = 0, used = 0;
    for (uint32_t i = 0; i < entry_count; i++) {
        entry_t e = entries[i];
        if (e.node == node && (all_devices || edged_str_eq(entry_dev(&e), dev))) continue;
        memcpy(pool_scratch + used, pool + e.name_off, e.name_len);
        e.name_off = used;
        used += e.name_len;
        memcpy(pool_scratch + used, pool + e.dev_off, e.dev_len);
        e.dev_off = used;
        used += e.dev_len;
        entries[kept++] = e;
    }
    memcpy(pool, pool_scratch, used);
    pool_used = used;
    entry_count = kept;
    rehash();
}

/* 0 learned; -1 the table or its name pool is full. */
static int learn(uint32_t node, edged_str dev, edged_str name, int has_alias, uint64_t alias,
                 uint32_t datatype)
{
    int at = has_alias ? find_alias(node, alias) : find_name(node, dev, name);
    if (at < 0 && entry_count == MAX_ALIASES) return -1;
    if (name.len + dev.len > POOL_CAP - pool_used) return -1;
    entry_t e;
    e.alias = alias;
    e.has_alias = (uint8_t)has_alias;
    e.node = (uint16_t)node;
    e.datatype = (uint8_t)(datatype < SP_DATATYPES ? datatype : SP_UNKNOWN);
    e.name_off = pool_used;
    e.name_len = (uint16_t)name.len;
    memcpy(pool + pool_used, name.ptr, name.len);
    pool_used += name.len;
    e.dev_off = pool_used;
    e.dev_len = (uint8_t)dev.len;
    memcpy(pool + pool_used, dev.ptr, dev.len);
    pool_used += dev.len;
    if (at >= 0) {
        entries[at] = e;    /* the old text stays in the pool until the next forget */
        return 0;
    }
    if (has_alias) {
        uint32_t s = slot_of(node, alias);
        while (slots[s] >= 0)
            s = (s + 1) & (SLOTS - 1);
        slots[s] = (int16_t)entry_count;
    }
    entries[entry_count++] = e;
    return 0;
}

static int find_node(edged_str group, edged_str node, int create)
{
    for (uint32_t i = 0; i < node_count; i++)
        if (edged_str_eq((edged_str){ nodes[i].group, nodes[i].group_len }, group) &&
            edged_str_eq((edged_str){ nodes[i].node, nodes[i].node_len }, node))
            return (int)i;
    if (!create || node_count == MAX_NODES || group.len > MAX_ID || node.len > MAX_ID) return -1;
    node_t *n = &nodes[node_count];
    memset(n, 0, sizeof *n);
    memcpy(n->group, group.ptr, group.len);
    memcpy(n->node, node.ptr, node.len);
    n->group_len = (uint8_t)group.len;
    n->node_len = (uint8_t)node.len;
    n->last_seq = -1;
    return (int)node_count++;
}

/* ---- one message -------------------------------------------------------- */

static sp_topic topic;
static int node_ix;
static int birth;               /* NBIRTH or DBIRTH */
static sp_payload payload;
/* seq and timestamp of the message, from the first pass (decode() clears payload) */
static int cur_has_seq, cur_has_ts;
static uint64_t cur_seq, cur_ts;
static sp_metric metric;
static const char *why;         /* the reason of a refusal */
static const char unknown[] = "unknown";
static char unknown_store[300];    /* the unknown metric's name, as JSON */
static char reason_store[1024];
static uint64_t unknown_alias;
static int unknown_has_alias;
static char out_topic_store[4 * 1024];
static char out_store[EDGED_OUTPUT_CAP];

static edged_buf reason_buf(void)
{
    edged_buf b;
    edged_buf_init(&b, reason_store, sizeof reason_store);
    return b;
}

/* Float as the shortest decimal that reads back to the same float (21.3,
 * not 21.299999237060547): p significant digits, p = 1..9, each candidate
 * read back exactly by edged_parse_double. */
static void json_float(edged_buf *b, float f)
{
    double x = f;
    if (x != x || x - x != 0) {
        edged_buf_cstr(b, "null");
        return;
    }
    double a = x < 0 ? -x : x;
    if (a == 0) {
        edged_buf_double(b, x);
        return;
    }
    int e10 = 0;
    double s = a;
    while (s >= 10) { s /= 10; e10++; }
    while (s < 1) { s *= 10; e10--; }
    for (int p = 1; p <= 9; p++) {
        /* the p digits, scaled from s (an approximation, checked below) */
        double m = s;
        for (int k = 1; k < p; k++) m *= 10;
        uint64_t digits = (uint64_t)(m + 0.5);
        char txt[40];
        edged_buf t;
        edged_buf_init(&t, txt, sizeof txt);
        if (x < 0) edged_buf_char(&t, '-');
        edged_buf_int(&t, (int64_t)digits);
        edged_buf_char(&t, 'e');
        edged_buf_int(&t, e10 - (p - 1));
        double d;
        if (!t.failed && edged_parse_double(edged_buf_str(&t), &d) == 0 && (float)d == f) {
            edged_buf_double(b, d);
            return;
        }
    }
    edged_buf_double(b, x);
}

static void json_double(edged_buf *b, double v)
{
    if (v != v || v - v != 0) edged_buf_cstr(b, "null");
    else edged_buf_double(b, v);
}

static void json_uint(edged_buf *b, uint64_t v)
{
    char tmp[20];
    int n = sizeof tmp;
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    edged_buf_bytes(b, tmp + n, (uint32_t)(sizeof tmp - n));
}

static uint64_t le(const unsigned char *p, uint32_t w)
{
    uint64_t v = 0;
    for (uint32_t i = w; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

/* The metric's integer, from whichever of int_value and long_value holds it. */
static int int_of(const sp_metric *m, uint64_t *out)
{
    if (m->which_value == SP_TAG(int_value)) *out = m->value.int_value;
    else if (m->which_value == SP_TAG(long_value)) *out = m->value.long_value;
    else return -1;
    return 0;
}

static int64_t sign_extend(uint64_t v, int bits)
{
    if (bits == 64) return (int64_t)v;
    uint64_t mask = ((uint64_t)1 << bits) - 1;
    v &= mask;
    return (v >> (bits - 1)) ? (int64_t)(v | ~mask) : (int64_t)v;
}

/* The JSON value of a metric of datatype t; NULL when done, else the reason
 * the value cannot be shown (it is then null, with that reason as "error"). */
static const char *json_value(edged_buf *b, const sp_metric *m, uint32_t t)
{
    uint64_t u;
    if (m->has_is_null && m->is_null) {
        edged_buf_cstr(b, "null");
        return 0;
    }
    switch (t) {
    case SP_INT8: case SP_INT16: case SP_INT32: case SP_INT64:
        if (int_of(m, &u)) break;
        edged_buf_int(b, sign_extend(u, t == SP_INT8 ? 8 : t == SP_INT16 ? 16 : t == SP_INT32 ? 32 : 64));
        return 0;
    case SP_UINT8: case SP_UINT16: case SP_UINT32: case SP_UINT64: case SP_DATETIME:
        if (int_of(m, &u)) break;
        json_uint(b, u);
        return 0;
    case SP_FLOAT:
        if (m->which_value == SP_TAG(float_value)) { json_float(b, m->value.float_value); return 0; }
        if (m->which_value == SP_TAG(double_value)) { json_double(b, m->value.double_value); return 0; }
        break;
    case SP_DOUBLE:
        if (m->which_value == SP_TAG(double_value)) { json_double(b, m->value.double_value); return 0; }
        if (m->which_value == SP_TAG(float_value)) { json_float(b, m->value.float_value); return 0; }
        break;
    case SP_BOOLEAN:
        if (m->which_value != SP_TAG(boolean_value)) break;
        edged_buf_cstr(b, m->value.boolean_value ? "true" : "false");
        return 0;
    case SP_STRING: case SP_TEXT: case SP_UUID: {
        if (m->which_value != SP_TAG(string_value)) break;
        edged_str s = edged_cstr(m->value.string_value);
        if (!edged_utf8_valid((const unsigned char *)s.ptr, s.len)) return "the string is not UTF-8";
        edged_buf_json_string(b, s);
        return 0;
    }
    case SP_BYTES: case SP_FILE:
        if (m->which_value != SP_TAG(bytes_value)) break;
        edged_buf_char(b, '"');
        edged_buf_base64(b, m->value.bytes_value.bytes, m->value.bytes_value.size);
        edged_buf_char(b, '"');
        return 0;
    case SP_DATASET:
        return "DataSet values are not decoded by this filter";
    case SP_TEMPLATE:
        return "Template values are not decoded by this filter";
    case SP_PROPERTYSET: case SP_PROPERTYSETLIST:
        return "PropertySet values are not decoded by this filter";
    default:
        break;
    }
    if (t >= SP_INT8_ARRAY && t <= SP_DATETIME_ARRAY) {
        if (m->which_value != SP_TAG(bytes_value)) return "an array must be in bytes_value";
        const unsigned char *p = m->value.bytes_value.bytes;
        uint32_t n = m->value.bytes_value.size;
        uint32_t w = sp_array_width(t);
        if (t == SP_BOOLEAN_ARRAY) {
            if (n < 4) return "a BooleanArray starts with its 4-byte count";
            uint32_t count = (uint32_t)le(p, 4);
            if (count > (n - 4) * 8) return "a BooleanArray has fewer bits than its count";
            edged_buf_char(b, '[');
            for (uint32_t i = 0; i < count; i++) {
                if (i) edged_buf_char(b, ',');
                int bit = (p[4 + i / 8] >> (7 - i % 8)) & 1;
                edged_buf_cstr(b, bit ? "true" : "false");
            }
            edged_buf_char(b, ']');
            return 0;
        }
        if (t == SP_STRING_ARRAY) {
            if (n && p[n - 1] != 0) return "a StringArray ends with a NUL";
            if (!edged_utf8_valid(p, n)) return "a StringArray is not UTF-8";
            edged_buf_char(b, '[');
            uint32_t start = 0;
            for (uint32_t i = 0; i < n; i++) {
                if (p[i]) continue;
                if (start) edged_buf_char(b, ',');
                edged_buf_json_string(b, (edged_str){ (const char *)p + start, i - start });
                start = i + 1;
            }
            edged_buf_char(b, ']');
            return 0;
        }
        if (n % w) return "the array's bytes are not a whole number of elements";
        edged_buf_char(b, '[');
        for (uint32_t i = 0; i < n; i += w) {
            if (i) edged_buf_char(b, ',');
            uint64_t v = le(p + i, w);
            switch (t) {
            case SP_INT8_ARRAY: case SP_INT16_ARRAY: case SP_INT32_ARRAY: case SP_INT64_ARRAY:
                edged_buf_int(b, sign_extend(v, (int)w * 8));
                break;
            case SP_FLOAT_ARRAY: {
                uint32_t bits = (uint32_t)v;
                float f;
                memcpy(&f, &bits, 4);
                json_float(b, f);
                break;
            }
            case SP_DOUBLE_ARRAY: {
                double d;
                memcpy(&d, &v, 8);
                json_double(b, d);
                break;
            }
            default:
                json_uint(b, v);
            }
        }
        edged_buf_char(b, ']');
        return 0;
    }
    if (t == SP_UNKNOWN || t >= SP_DATATYPES) return "the datatype is unknown";
    return "the value is not in the field its datatype uses";
}

/* Quality (Sparkplug 3.0, "Quality Codes"): the PropertySet key "Quality". */
static int quality_of(const sp_metric *m, int64_t *out)
{
    if (!m->has_properties) return 0;
    const org_eclipse_tahu_protobuf_Payload_PropertySet *ps = &m->properties;
    for (pb_size_t i = 0; i < ps->keys_count && i < ps->values_count; i++) {
        if (!edged_str_eq(edged_cstr(ps->keys[i]), EDGED_LIT("Quality"))) continue;
        const org_eclipse_tahu_protobuf_Payload_PropertyValue *v = &ps->values[i];
        if (v->which_value == org_eclipse_tahu_protobuf_Payload_PropertyValue_int_value_tag) {
            *out = (int32_t)v->value.int_value;
            return 1;
        }
        if (v->which_value == org_eclipse_tahu_protobuf_Payload_PropertyValue_long_value_tag) {
            *out = (int64_t)v->value.long_value;
            return 1;
        }
    }
    return 0;
}

/* Name and datatype of a metric: from itself, else from the alias table.
 * 0, or -1 when neither says (the alias or name was never born). */
static int resolve(const sp_metric *m, edged_str *name, uint32_t *datatype)
{
    const entry_t *e = 0;
    int at = -1;
    if (m->has_alias) at = find_alias((uint32_t)node_ix, m->alias);
    else if (m->name[0]) at = find_name((uint32_t)node_ix, topic.device, edged_cstr(m->name));
    if (at >= 0) e = &entries[at];
    *name = m->name[0] ? edged_cstr(m->name) : (e ? entry_name(e) : (edged_str){ 0, 0 });
    if (m->has_datatype) *datatype = m->datatype;
    else if (e) *datatype = e->datatype;
    else return -1;
    if (name->len == 0) return -1;
    return 0;
}

static void head(edged_buf *b, const char *type)
{
    edged_buf_cstr(b, "{\"group\":");
    edged_buf_json_string(b, topic.group);
    edged_buf_cstr(b, ",\"edge_node\":");
    edged_buf_json_string(b, topic.node);
    if (topic.device.len) {
        edged_buf_cstr(b, ",\"device\":");
        edged_buf_json_string(b, topic.device);
    }
    edged_buf_cstr(b, ",\"type\":\"");
    edged_buf_cstr(b, type);
    edged_buf_char(b, '"');
    if (cur_has_seq) {
        edged_buf_cstr(b, ",\"seq\":");
        json_uint(b, cur_seq);
    }
}

static void base_topic(edged_buf *t)
{
    edged_buf_append(t, prefix);
    edged_buf_char(t, '/');
    sp_buf_level(t, topic.group);
    edged_buf_char(t, '/');
    sp_buf_level(t, topic.node);
    if (topic.device.len) {
        edged_buf_char(t, '/');
        sp_buf_level(t, topic.device);
    }
}

/* A BIRTH metric goes into the alias table. 0, or -1 with `why` set. */
static int learn_metric(void)
{
    edged_str name = edged_cstr(metric.name);
    if (name.len == 0) {
        why = "a BIRTH metric has no name";
        return -1;
    }
    if (learn((uint32_t)node_ix, topic.device, name, metric.has_alias, metric.alias,
              metric.has_datatype ? metric.datatype : SP_UNKNOWN) != 0) {
        why = "the alias table is full (4096 metrics, 96 KiB of names)";
        return -1;
    }
    return 0;
}

/* The second pass: one message per metric. pb_decode sets the metric's
 * fields to their defaults itself (no memset of its 18 KiB here: that was
 * most of the cost of a message). */
static bool emit_metric(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    (void)arg;
    if (!pb_decode(stream, SP_METRIC_FIELDS, &metric)) return false;
    edged_str name = edged_cstr(metric.name);
    uint32_t t;
    if (!edged_utf8_valid((const unsigned char *)name.ptr, name.len)) {
        why = "a metric name is not UTF-8";
        return false;
    }
    if (birth && learn_metric() != 0) return false;
    if (resolve(&metric, &name, &t) != 0) {
        unknown_has_alias = metric.has_alias;
        unknown_alias = metric.alias;
        if (!metric.has_alias) {
            edged_buf r;
            edged_buf_init(&r, unknown_store, sizeof unknown_store - 1);
            edged_buf_json_string(&r, name);
            unknown_store[r.failed ? 0 : r.len] = 0;
        }
        why = unknown;
        return false;
    }
    edged_buf b, tb;
    edged_buf_init(&b, out_store, sizeof out_store);
    edged_buf_init(&tb, out_topic_store, sizeof out_topic_store);
    base_topic(&tb);
    edged_buf_char(&tb, '/');
    sp_buf_level(&tb, name);

    head(&b, sp_msg_names[topic.type]);
    edged_buf_cstr(&b, ",\"metric\":");
    edged_buf_json_string(&b, name);
    if (metric.has_alias) {
        edged_buf_cstr(&b, ",\"alias\":");
        json_uint(&b, metric.alias);
    }
    edged_buf_cstr(&b, ",\"datatype\":\"");
    edged_buf_cstr(&b, sp_type_name(t));
    edged_buf_cstr(&b, "\",\"value\":");
    uint32_t before = b.len;
    const char *error = json_value(&b, &metric, t);
    if (error) {
        b.len = before;
        edged_buf_cstr(&b, "null,\"error\":");
        edged_buf_json_string(&b, edged_cstr(error));
    }
    if (metric.has_timestamp || cur_has_ts) {
        edged_buf_cstr(&b, ",\"timestamp\":");
        json_uint(&b, metric.has_timestamp ? metric.timestamp : cur_ts);
    }
    int64_t q;
    if (quality_of(&metric, &q)) {
        edged_buf_cstr(&b, ",\"quality\":");
        edged_buf_int(&b, q);
    }
    if (metric.has_is_historical && metric.is_historical) edged_buf_cstr(&b, ",\"historical\":true");
    if (metric.has_is_transient && metric.is_transient) edged_buf_cstr(&b, ",\"transient\":true");
    edged_buf_char(&b, '}');
    if (b.failed || tb.failed || edged_emit(edged_buf_str(&tb), edged_buf_str(&b)) != 0) {
        why = "the metrics of this payload do not fit the output area";
        return false;
    }
    return true;
}

static uint32_t metric_count;
static uint32_t max_metrics;    /* param: the node's budgets.max_emits */

static bool skip_metric(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    (void)arg;
    metric_count++;
    return pb_read(stream, 0, stream->bytes_left);
}

typedef bool (*decode_fn)(pb_istream_t *, const pb_field_t *, void **);

static bool decode(edged_str data, decode_fn fn)
{
    pb_istream_t s = pb_istream_from_buffer((const pb_byte_t *)data.ptr, data.len);
    memset(&payload, 0, sizeof payload);
    payload.metrics.funcs.decode = fn;
    return pb_decode(&s, SP_PAYLOAD_FIELDS, &payload);
}

static int refuse(void)
{
    rejected++;
    edged__reset_output();
    edged_buf r = reason_buf();
    edged_buf_cstr(&r, sp_msg_names[topic.type]);
    edged_buf_cstr(&r, ": ");
    edged_buf_cstr(&r, why);
    return edged_reject(edged_buf_str(&r));
}

/* The NCMD a host application sends for a rebirth (Sparkplug 3.0, "Rebirth
 * Request"): metric `Node Control/Rebirth`, Boolean, true. */
static bool rebirth_metric(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    (void)arg;
    static const char rebirth[] = "Node Control/Rebirth";
    memset(&metric, 0, sizeof metric);
    memcpy(metric.name, rebirth, sizeof rebirth);
    metric.has_name = true;
    metric.has_datatype = true;
    metric.datatype = SP_BOOLEAN;
    metric.which_value = SP_TAG(boolean_value);
    metric.value.boolean_value = true;
    if (cur_has_ts) {
        metric.has_timestamp = true;
        metric.timestamp = cur_ts;
    }
    return sp_encode_metric(stream, field, &metric);
}

static int request_rebirth(void)
{
    node_t *n = &nodes[node_ix];
    if (n->rebirth_pending &&
        !(cur_has_ts && cur_ts >= n->rebirth_ts + REBIRTH_AGAIN_MS))
        return 0;
    static sp_payload cmd;
    memset(&cmd, 0, sizeof cmd);
    if (cur_has_ts) {
        cmd.has_timestamp = true;
        cmd.timestamp = cur_ts;
    }
    cmd.metrics.funcs.encode = rebirth_metric;
    edged_buf b, tb;
    edged_buf_init(&b, out_store, sizeof out_store);
    edged_buf_init(&tb, out_topic_store, sizeof out_topic_store);
    pb_ostream_t os = sp_ostream(&b);
    if (!pb_encode(&os, SP_PAYLOAD_FIELDS, &cmd)) return 0;
    edged_buf_cstr(&tb, "spBv1.0/");
    edged_buf_append(&tb, topic.group);
    edged_buf_cstr(&tb, "/NCMD/");
    edged_buf_append(&tb, topic.node);
    if (b.failed || tb.failed || edged_emit(edged_buf_str(&tb), edged_buf_str(&b)) != 0) return 0;
    n->rebirth_pending = 1;
    n->rebirth_ts = cur_has_ts ? cur_ts : 0;
    rebirth_requests++;
    return 1;
}

static int death(void)
{
    edged_buf b, tb;
    edged_buf_init(&b, out_store, sizeof out_store);
    edged_buf_init(&tb, out_topic_store, sizeof out_topic_store);
    base_topic(&tb);
    edged_buf_cstr(&tb, "/$death");
    head(&b, sp_msg_names[topic.type]);
    if (cur_has_ts) {
        edged_buf_cstr(&b, ",\"timestamp\":");
        json_uint(&b, cur_ts);
    }
    edged_buf_char(&b, '}');
    if (b.failed || tb.failed || edged_emit(edged_buf_str(&tb), edged_buf_str(&b)) != 0) {
        why = "the message does not fit the output area";
        return refuse();
    }
    return EDGED_EMIT;
}

static void check_seq(void)
{
    node_t *n = &nodes[node_ix];
    if (!cur_has_seq) return;
    int seq = (int)(cur_seq & 255);
    if (topic.type != SP_NBIRTH && n->last_seq >= 0 && seq != ((n->last_seq + 1) & 255))
        seq_gaps++;
    n->last_seq = (int16_t)seq;
}

static int edged_filter(edged_str t, edged_str data)
{
    why = 0;
    if (sp_parse_topic(t, &topic) != 0) {
        topic.type = SP_OTHER;
        why = "not a Sparkplug B topic (spBv1.0/<group>/<type>/<edge node>[/<device>])";
        rejected++;
        return edged_reject(edged_cstr(why));
    }
    if (topic.type == SP_STATE || topic.type == SP_NCMD || topic.type == SP_DCMD) return EDGED_DROP;
    node_ix = find_node(topic.group, topic.node, 1);
    if (node_ix < 0) {
        why = "too many edge nodes (256), or a group or edge node id over 64 bytes";
        return refuse();
    }
    if (topic.device.len > 255) {
        why = "a device id over 255 bytes";
        return refuse();
    }
    /* Payload fields come in field order: seq (3) after the metrics (2), so
     * a first pass without the metrics finds seq and timestamp. */
    metric_count = 0;
    if (!decode(data, skip_metric)) {
        why = "not a Sparkplug B payload";
        return refuse();
    }
    /* One message per metric: past the host's max_emits the whole call
     * would be a violation (and count towards quarantine); refuse it here
     * instead, before the alias table is touched. */
    if (metric_count > max_metrics) {
        edged_buf r = reason_buf();
        edged_buf_cstr(&r, sp_msg_names[topic.type]);
        edged_buf_cstr(&r, ": ");
        json_uint(&r, metric_count);
        edged_buf_cstr(&r, " metrics, over max_metrics (");
        json_uint(&r, max_metrics);
        edged_buf_cstr(&r, "): raise the param and the module's budgets.max_emits");
        rejected++;
        return edged_reject(edged_buf_str(&r));
    }
    cur_has_seq = payload.has_seq;
    cur_seq = payload.seq;
    cur_has_ts = payload.has_timestamp;
    cur_ts = payload.timestamp;
    if (topic.type == SP_NDEATH || topic.type == SP_DDEATH) {
        if (topic.type == SP_NDEATH) nodes[node_ix].last_seq = -1;
        else check_seq();
        return death();
    }
    birth = topic.type == SP_NBIRTH || topic.type == SP_DBIRTH;
    if (topic.type == SP_NBIRTH) {
        forget((uint32_t)node_ix, topic.device, 1);
        nodes[node_ix].rebirth_pending = 0;
    } else if (topic.type == SP_DBIRTH) {
        forget((uint32_t)node_ix, topic.device, 0);
    }
    check_seq();
    if (!decode(data, emit_metric)) {
        if (why == unknown) {
            edged__reset_output();  /* what the metrics before it emitted */
            int asked = request_rebirth();
            rejected++;
            edged_buf r = reason_buf();
            edged_buf_cstr(&r, sp_msg_names[topic.type]);
            if (unknown_has_alias) {
                edged_buf_cstr(&r, ": unknown alias ");
                json_uint(&r, unknown_alias);
            } else {
                edged_buf_cstr(&r, ": unknown metric ");
                edged_buf_cstr(&r, unknown_store);
            }
            edged_buf_cstr(&r, asked ? ": no BIRTH named it; rebirth requested"
                                     : ": no BIRTH named it; rebirth already requested");
            return edged_reject(edged_buf_str(&r));
        }
        if (!why) why = "not a Sparkplug B payload";
        return refuse();
    }
    return edged__emitted ? EDGED_EMIT : EDGED_DROP;
}

/* ---- stats on ticks ----------------------------------------------------- */

static void edged_filter_tick(int64_t now_ms)
{
    (void)now_ms;
    edged_buf b, tb;
    edged_buf_init(&b, out_store, sizeof out_store);
    edged_buf_init(&tb, out_topic_store, sizeof out_topic_store);
    edged_buf_append(&tb, prefix);
    edged_buf_cstr(&tb, "/$stats");
    edged_buf_cstr(&b, "{\"edge_nodes\":");
    json_uint(&b, node_count);
    edged_buf_cstr(&b, ",\"aliases\":");
    json_uint(&b, entry_count);
    edged_buf_cstr(&b, ",\"rebirth_requests\":");
    json_uint(&b, rebirth_requests);
    edged_buf_cstr(&b, ",\"seq_gaps\":");
    json_uint(&b, seq_gaps);
    edged_buf_cstr(&b, ",\"rejected\":");
    json_uint(&b, rejected);
    edged_buf_char(&b, '}');
    edged_emit(edged_buf_str(&tb), edged_buf_str(&b));
}

/* ---- params and state --------------------------------------------------- */

static int edged_filter_init(void)
{
    prefix = edged_param("prefix");
    if (prefix.ptr == 0) prefix = EDGED_LIT("sparkplug");
    if (!edged_topic_valid(prefix) || prefix.len > 256) {
        edged_log(EDGED_LOG_ERROR, "sparkplug_decode: prefix must be a topic without + or # (at most 256 bytes)");
        return 1;
    }
    double m;
    if (edged_param_number_strict("max_metrics", 64, &m) != 0 || m < 1 || m > 100000 ||
        m != (double)(uint32_t)m) {
        edged_log(EDGED_LOG_ERROR, "sparkplug_decode: max_metrics must be an integer 1..100000");
        return 2;
    }
    max_metrics = (uint32_t)m;
    rehash();
    return 0;
}

static uint32_t edged_filter_save(edged_writer *w)
{
    edged_put_u32(w, rebirth_requests);
    edged_put_u32(w, seq_gaps);
    edged_put_u32(w, rejected);
    edged_put_u32(w, node_count);
    for (uint32_t i = 0; i < node_count; i++) {
        const node_t *n = &nodes[i];
        edged_put_bytes(w, (edged_str){ n->group, n->group_len });
        edged_put_bytes(w, (edged_str){ n->node, n->node_len });
        edged_put_u32(w, (uint32_t)(int32_t)n->last_seq);
        edged_put_u8(w, n->rebirth_pending);
        edged_put_u64(w, n->rebirth_ts);
    }
    edged_put_u32(w, entry_count);
    for (uint32_t i = 0; i < entry_count; i++) {
        const entry_t *e = &entries[i];
        edged_put_u32(w, e->node);
        edged_put_u8(w, e->datatype);
        edged_put_u8(w, e->has_alias);
        edged_put_u64(w, e->alias);
        edged_put_bytes(w, entry_name(e));
        edged_put_bytes(w, entry_dev(e));
    }
    return STATE_FORMAT;
}

static int edged_filter_load(uint32_t format, edged_reader *r)
{
    uint32_t n;
    if (format != STATE_FORMAT) return 1;
    edged_get_u32(r, &rebirth_requests);
    edged_get_u32(r, &seq_gaps);
    edged_get_u32(r, &rejected);
    if (edged_get_u32(r, &n) != 0 || n > MAX_NODES) return 2;
    for (uint32_t i = 0; i < n; i++) {
        edged_str g, nd;
        uint32_t last;
        uint8_t pending;
        uint64_t ts;
        if (edged_get_bytes(r, &g) || edged_get_bytes(r, &nd) || edged_get_u32(r, &last) ||
            edged_get_u8(r, &pending) || edged_get_u64(r, &ts))
            return 3;
        int ix = find_node(g, nd, 1);
        if (ix != (int)i) return 3;
        nodes[ix].last_seq = (int16_t)(int32_t)last;
        nodes[ix].rebirth_pending = pending;
        nodes[ix].rebirth_ts = ts;
    }
    if (edged_get_u32(r, &n) != 0 || n > MAX_ALIASES) return 4;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t node;
        uint8_t datatype, has_alias;
        uint64_t alias;
        edged_str name, dev;
        if (edged_get_u32(r, &node) || edged_get_u8(r, &datatype) || edged_get_u8(r, &has_alias) ||
            edged_get_u64(r, &alias) || edged_get_bytes(r, &name) || edged_get_bytes(r, &dev))
            return 5;
        if (node >= node_count || name.len > 255 || dev.len > 255) return 5;
        if (learn(node, dev, name, has_alias, alias, datatype) != 0) return 5;
    }
    return 0;
}
