/*
 * deadband: forwards a reading only when it moved far enough.
 *
 * params: field (default "value"), deadband (default 0.5, must be >= 0)
 * Per input topic, the message goes on unchanged when it is the first value
 * seen for that topic or |value - last forwarded value| >= deadband;
 * otherwise it is dropped.
 *
 * Messages without a numeric `field` are forwarded: the filter only
 * suppresses what it understands, so status messages or a changed payload
 * format pass instead of vanishing. For the same reason a topic that does
 * not fit in the table (128 topics, 16 KiB of topic text) is forwarded.
 *
 * State, format 1: the number of topics (u32), then per topic in first-seen
 * order its text (u32 length, bytes) and last forwarded value (f64). Loaded
 * in that order, the table comes back slot for slot.
 */
#define EDGED_WITH_INIT
#define EDGED_WITH_STATE
#include "edged.h"

#define MAX_TOPICS 128
#define SLOTS 256               /* power of two; half empty keeps probes short */
#define POOL_CAP (16u * 1024u)

struct slot {
    uint32_t used;
    uint32_t hash;
    uint32_t off;               /* topic text in pool */
    uint32_t len;
    double last;                /* last forwarded value */
};

static struct slot slots[SLOTS];
static uint8_t order[MAX_TOPICS];   /* slot numbers, first-seen order */
static char pool[POOL_CAP];
static uint32_t pool_used;
static int n_topics;
static int warned_full;

static edged_str field;
static double deadband;

static int edged_filter_init(void)
{
    field = edged_param("field");
    if (!field.ptr) field = EDGED_LIT("value");
    if (edged_param_number_strict("deadband", 0.5, &deadband) != 0 || !(deadband >= 0)) {
        edged_log(EDGED_LOG_ERROR, "deadband: param 'deadband' must be a number >= 0");
        return 1;
    }
    return 0;
}

/* The slot for topic, claimed if new (*fresh = 1), or 0 when the table or
 * the text pool is full. Full topic text is stored so that two topics with
 * the same hash can never share a last value. */
static struct slot *lookup(edged_str topic, int *fresh)
{
    uint32_t h = edged_hash(topic);
    for (uint32_t i = h & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        struct slot *s = &slots[i];
        if (!s->used) {
            /* At most MAX_TOPICS of the SLOTS are ever used, so the probe
             * always reaches a free slot. */
            if (n_topics == MAX_TOPICS || topic.len > POOL_CAP - pool_used) return 0;
            memcpy(pool + pool_used, topic.ptr, topic.len);
            s->used = 1;
            s->hash = h;
            s->off = pool_used;
            s->len = topic.len;
            pool_used += topic.len;
            order[n_topics++] = (uint8_t)i;
            *fresh = 1;
            return s;
        }
        if (s->hash == h && s->len == topic.len) {
            edged_str known = { pool + s->off, s->len };
            if (edged_str_eq(known, topic)) {
                *fresh = 0;
                return s;
            }
        }
    }
}

static int edged_filter(edged_str topic, edged_str payload)
{
    edged_str raw;
    double v;
    int fresh;
    if (edged_json_field(payload, field.ptr, &raw) != 0 || edged_parse_number(raw, &v) != 0)
        return EDGED_FORWARD;
    struct slot *s = lookup(topic, &fresh);
    if (!s) {
        if (!warned_full) {
            warned_full = 1;
            edged_log(EDGED_LOG_WARN, "deadband: topic table full, new topics pass unfiltered");
        }
        return EDGED_FORWARD;
    }
    double d = v - s->last;
    if (fresh || d >= deadband || -d >= deadband) {
        s->last = v;
        return EDGED_FORWARD;
    }
    return EDGED_DROP;
}

static uint32_t edged_filter_save(edged_writer *w)
{
    edged_put_u32(w, (uint32_t)n_topics);
    for (int i = 0; i < n_topics; i++) {
        const struct slot *s = &slots[order[i]];
        edged_str topic = { pool + s->off, s->len };
        edged_put_bytes(w, topic);
        edged_put_f64(w, s->last);
    }
    return 1;
}

/* Refused: 1 an unknown format, 2 more topics or topic text than this build
 * keeps, 3 a topic twice. A short or long blob is refused by the SDK. */
static int edged_filter_load(uint32_t format, edged_reader *r)
{
    uint32_t n;
    if (format != 1) return 1;
    if (edged_get_u32(r, &n) != 0) return EDGED_STATE_TRUNCATED;
    if (n > MAX_TOPICS) return 2;
    for (uint32_t i = 0; i < n; i++) {
        edged_str topic;
        double last;
        int fresh;
        edged_get_bytes(r, &topic);
        edged_get_f64(r, &last);
        if (r->failed) return EDGED_STATE_TRUNCATED;
        struct slot *s = lookup(topic, &fresh);
        if (!s) return 2;
        if (!fresh) return 3;
        s->last = last;
    }
    return 0;
}
