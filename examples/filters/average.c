/*
 * average: replaces a stream of readings with one summary per tick.
 *
 * params: field (default "value"), suffix (default "/avg"),
 *         decimals (default 2, integer 0..20)
 * Every message is dropped; its numeric `field` is added to the window of
 * its topic. On each tick, every topic with readings (in the order topics
 * were first seen) gets one message on <topic><suffix>:
 *   {"avg":20.27,"min":20.00,"max":20.60,"count":3,"ts":1700000000000}
 * and its window starts over. When the output area is full the remaining
 * topics keep their windows for the next tick.
 *
 * Limits: 64 topics of at most 200 bytes each (others are dropped with one
 * warning); readings of magnitude 1e15 or more are ignored, since they could
 * not be printed without an exponent.
 *
 * State, format 1: the number of topics (u32), then per topic in first-seen
 * order its text (u32 length, bytes), count (u64), sum, min and max (f64; 0
 * for an empty window). The windows survive a reload or a restart, so a
 * summary is never cut short by one; the params are not part of it.
 */
#define EDGED_WITH_INIT
#define EDGED_WITH_TICK
#define EDGED_WITH_STATE
#include "edged.h"

#define MAX_TOPICS 64
#define MAX_TOPIC_LEN 200
#define MAX_SUFFIX_LEN 200

struct window {
    uint32_t hash;
    uint32_t len;
    char topic[MAX_TOPIC_LEN];
    int64_t count;
    double sum, min, max;
};

static struct window windows[MAX_TOPICS];   /* index order = first-seen order */
static int n_windows;
static int warned_topics, warned_range;

static edged_str field;
static edged_str suffix;
static int decimals;

static int int_param(const char *key, int dflt, int lo, int hi, int *out)
{
    double v;
    if (edged_param_number_strict(key, dflt, &v) != 0 || !(v >= lo && v <= hi) || v != (double)(int)v)
        return -1;
    *out = (int)v;
    return 0;
}

static int edged_filter_init(void)
{
    field = edged_param("field");
    if (!field.ptr) field = EDGED_LIT("value");
    suffix = edged_param("suffix");
    if (!suffix.ptr) suffix = EDGED_LIT("/avg");
    /* An empty suffix is allowed (same topic out); anything else must be
     * topic text, or every summary would be refused at tick time. */
    if (suffix.len > MAX_SUFFIX_LEN || (suffix.len && !edged_topic_valid(suffix))) {
        edged_log(EDGED_LOG_ERROR, "average: param 'suffix' must be topic text of at most 200 bytes");
        return 1;
    }
    if (int_param("decimals", 2, 0, EDGED_FIXED_MAX_DECIMALS, &decimals) != 0) {
        edged_log(EDGED_LOG_ERROR, "average: param 'decimals' must be an integer 0..20");
        return 2;
    }
    return 0;
}

static struct window *find_or_add(edged_str topic)
{
    uint32_t h = edged_hash(topic);
    for (int i = 0; i < n_windows; i++) {
        struct window *w = &windows[i];
        if (w->hash == h && w->len == topic.len) {
            edged_str known = { w->topic, w->len };
            if (edged_str_eq(known, topic)) return w;
        }
    }
    if (n_windows == MAX_TOPICS || topic.len > MAX_TOPIC_LEN) {
        if (!warned_topics) {
            warned_topics = 1;
            edged_log(EDGED_LOG_WARN, "average: more than 64 topics or a topic over 200 bytes; its readings are dropped");
        }
        return 0;
    }
    struct window *w = &windows[n_windows++];
    w->hash = h;
    w->len = topic.len;
    memcpy(w->topic, topic.ptr, topic.len);
    return w;
}

static int edged_filter(edged_str topic, edged_str payload)
{
    edged_str raw;
    double v;
    if (edged_json_field(payload, field.ptr, &raw) != 0 || edged_parse_number(raw, &v) != 0)
        return EDGED_DROP;
    if (!(v > -EDGED_FIXED_LIMIT && v < EDGED_FIXED_LIMIT)) {
        if (!warned_range) {
            warned_range = 1;
            edged_log(EDGED_LOG_WARN, "average: ignoring readings of magnitude 1e15 or more");
        }
        return EDGED_DROP;
    }
    struct window *w = find_or_add(topic);
    if (!w) return EDGED_DROP;
    if (w->count == 0) {
        w->sum = 0;
        w->min = w->max = v;
    }
    w->count++;
    w->sum += v;
    if (v < w->min) w->min = v;
    if (v > w->max) w->max = v;
    return EDGED_DROP;
}

static void edged_filter_tick(int64_t now_ms)
{
    char tbuf[MAX_TOPIC_LEN + MAX_SUFFIX_LEN];
    char pbuf[256];
    edged_buf t, p;

    for (int i = 0; i < n_windows; i++) {
        struct window *w = &windows[i];
        if (w->count == 0) continue;
        double avg = w->sum / (double)w->count;
        /* Rounding in the sum can land a hair outside [min, max]; the true
         * mean cannot, and clamping keeps it printable. */
        if (avg < w->min) avg = w->min;
        if (avg > w->max) avg = w->max;

        edged_buf_init(&t, tbuf, sizeof tbuf);
        edged_buf_bytes(&t, w->topic, w->len);
        edged_buf_append(&t, suffix);

        edged_buf_init(&p, pbuf, sizeof pbuf);
        edged_buf_cstr(&p, "{\"avg\":");
        edged_buf_fixed(&p, avg, decimals);
        edged_buf_cstr(&p, ",\"min\":");
        edged_buf_fixed(&p, w->min, decimals);
        edged_buf_cstr(&p, ",\"max\":");
        edged_buf_fixed(&p, w->max, decimals);
        edged_buf_cstr(&p, ",\"count\":");
        edged_buf_int(&p, w->count);
        edged_buf_cstr(&p, ",\"ts\":");
        edged_buf_int(&p, now_ms);
        edged_buf_char(&p, '}');

        /* Both buffers are sized for the worst case, so only a full output
         * area stops the loop; the windows not yet sent wait for the next
         * tick rather than being lost. */
        if (edged_emit(edged_buf_str(&t), edged_buf_str(&p)) == -1) break;
        w->count = 0;
    }
}

static uint32_t edged_filter_save(edged_writer *w)
{
    edged_put_u32(w, (uint32_t)n_windows);
    for (int i = 0; i < n_windows; i++) {
        const struct window *x = &windows[i];
        edged_str topic = { x->topic, x->len };
        /* An emptied window keeps its place in the order, not its old figures. */
        int empty = x->count == 0;
        edged_put_bytes(w, topic);
        edged_put_u64(w, (uint64_t)x->count);
        edged_put_f64(w, empty ? 0 : x->sum);
        edged_put_f64(w, empty ? 0 : x->min);
        edged_put_f64(w, empty ? 0 : x->max);
    }
    return 1;
}

/* Refused: 1 an unknown format, 2 more topics or a longer topic than this
 * build keeps, 3 a topic twice. A short or long blob is refused by the SDK. */
static int edged_filter_load(uint32_t format, edged_reader *r)
{
    uint32_t n;
    if (format != 1) return 1;
    if (edged_get_u32(r, &n) != 0) return EDGED_STATE_TRUNCATED;
    if (n > MAX_TOPICS) return 2;
    for (uint32_t i = 0; i < n; i++) {
        edged_str topic;
        uint64_t count;
        double sum, min, max;
        edged_get_bytes(r, &topic);
        edged_get_u64(r, &count);
        edged_get_f64(r, &sum);
        edged_get_f64(r, &min);
        edged_get_f64(r, &max);
        if (r->failed) return EDGED_STATE_TRUNCATED;
        if (topic.len > MAX_TOPIC_LEN || count > (uint64_t)INT64_MAX) return 2;
        int known = n_windows;
        struct window *w = find_or_add(topic);
        if (n_windows == known) return 3;
        w->count = (int64_t)count;
        w->sum = sum;
        w->min = min;
        w->max = max;
    }
    return 0;
}
