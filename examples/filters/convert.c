/*
 * convert: rescales one numeric field and projects the payload.
 *
 * params: field (default "value"), as (output name, default: field),
 *         scale (default 1), offset (default 0),
 *         decimals (default 2, integer 0..20),
 *         keep (comma-separated top-level fields copied verbatim)
 * Emits on the same topic:
 *   {"<as>":<value*scale+offset>,"<kept>":<raw>,...}
 * Kept fields follow in the listed order; missing ones are skipped, as are
 * repeats and a name equal to `as` (either would duplicate a key). A payload
 * without a numeric `field`, with a result of magnitude 1e15 or more,
 * found malformed while looking for a kept field, or whose result does not
 * fit in the output area, is dropped.
 */
#define EDGED_WITH_INIT
#include "edged.h"

#define MAX_KEEP 16

static edged_str field;
static edged_str as;
static double scale, offset;
static int decimals;

/* edged_json_field wants NUL-terminated keys, so the keep list is copied
 * here with its separators turned into NULs. */
static char keep_store[EDGED_PARAMS_CAP];
static const char *keep[MAX_KEEP];
static int n_keep;

static char scratch[EDGED_OUTPUT_CAP];

static int int_param(const char *key, int dflt, int lo, int hi, int *out)
{
    double v;
    if (edged_param_number_strict(key, dflt, &v) != 0 || !(v >= lo && v <= hi) || v != (double)(int)v)
        return -1;
    *out = (int)v;
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

static int parse_keep(edged_str list)
{
    uint32_t i = 0;
    memcpy(keep_store, list.ptr, list.len);
    keep_store[list.len] = 0;
    while (i < list.len) {
        while (i < list.len && (is_space(keep_store[i]) || keep_store[i] == ','))
            i++;
        if (i == list.len) break;
        uint32_t start = i;
        while (i < list.len && keep_store[i] != ',')
            i++;
        uint32_t end = i;
        while (end > start && is_space(keep_store[end - 1]))
            end--;
        keep_store[end] = 0;
        if (i < list.len) i++;

        edged_str name = edged_cstr(keep_store + start);
        int dup = edged_str_eq(name, as);
        for (int k = 0; k < n_keep && !dup; k++)
            dup = edged_str_eq(name, edged_cstr(keep[k]));
        if (dup) continue;
        if (n_keep == MAX_KEEP) return -1;
        keep[n_keep++] = keep_store + start;
    }
    return 0;
}

static int edged_filter_init(void)
{
    field = edged_param("field");
    if (!field.ptr) field = EDGED_LIT("value");
    as = edged_param("as");
    if (!as.ptr) as = field;
    if (edged_param_number_strict("scale", 1, &scale) != 0 ||
        edged_param_number_strict("offset", 0, &offset) != 0) {
        edged_log(EDGED_LOG_ERROR, "convert: params 'scale' and 'offset' must be numbers");
        return 1;
    }
    if (int_param("decimals", 2, 0, EDGED_FIXED_MAX_DECIMALS, &decimals) != 0) {
        edged_log(EDGED_LOG_ERROR, "convert: param 'decimals' must be an integer 0..20");
        return 2;
    }
    n_keep = 0;
    if (parse_keep(edged_param("keep")) != 0) {
        edged_log(EDGED_LOG_ERROR, "convert: param 'keep' lists more than 16 fields");
        return 3;
    }
    return 0;
}

static int edged_filter(edged_str topic, edged_str payload)
{
    edged_str raw;
    double v;
    if (edged_json_field(payload, field.ptr, &raw) != 0 || edged_parse_number(raw, &v) != 0)
        return EDGED_DROP;

    edged_buf b;
    edged_buf_init(&b, scratch, sizeof scratch);
    edged_buf_char(&b, '{');
    edged_buf_json_string(&b, as);
    edged_buf_char(&b, ':');
    edged_buf_fixed(&b, v * scale + offset, decimals);
    for (int k = 0; k < n_keep; k++) {
        int r = edged_json_field(payload, keep[k], &raw);
        if (r == -1) continue;
        if (r != 0) return EDGED_DROP;
        edged_buf_char(&b, ',');
        edged_buf_json_string(&b, edged_cstr(keep[k]));
        edged_buf_char(&b, ':');
        edged_buf_append(&b, raw);
    }
    edged_buf_char(&b, '}');
    if (b.failed) return EDGED_DROP;
    edged_emit(topic, edged_buf_str(&b));
    return EDGED_DROP;
}
