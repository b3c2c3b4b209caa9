/*
 * threshold-libc: examples/filters/threshold.c written with wasi-libc.
 *
 * params: field (default "value"), limit (required), topic (default "alert")
 * A JSON object whose `field` is a number strictly greater than `limit`
 * becomes one message on `topic`:
 *   {"topic":"<input topic>","field":"<field>","value":<raw>,"limit":<limit>}
 * Everything else is dropped. Same output as threshold.c.
 *
 * The SDK still finds the field and escapes the strings; libc parses the
 * numbers (strtod, correctly rounded), assembles the alert (snprintf) and
 * reports a bad param on stderr, which edged logs at warning level when the
 * module is granted the `log` capability. Build it as a WASI reactor:
 *   make -C sdk/c wasi          (sdk/c/Makefile, target "wasi")
 */
#define EDGED_WITH_INIT
#include "edged.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static edged_str field;
static edged_str limit_text;    /* echoed as written in the config */
static double limit;
static edged_str alert_topic;
static char topic_json[EDGED_INPUT_CAP];
static char field_json[EDGED_PARAMS_CAP];
static char scratch[EDGED_OUTPUT_CAP];

/* A JSON number as a double: edged_parse_number checks the grammar and the
 * range (it refuses values beyond the double range), strtod gives the
 * correctly rounded value. */
static int number(edged_str raw, double *out)
{
    char text[400], *end;
    double v;
    if (edged_parse_number(raw, &v) != 0) return -1;
    if (raw.len < sizeof text) {
        memcpy(text, raw.ptr, raw.len);
        text[raw.len] = '\0';
        v = strtod(text, &end);
        if (end != text + raw.len || isinf(v)) return -1;
    }
    *out = v;
    return 0;
}

static int edged_filter_init(void)
{
    field = edged_param("field");
    if (!field.ptr) field = EDGED_LIT("value");
    limit_text = edged_param("limit");
    if (!limit_text.ptr || number(limit_text, &limit) != 0) {
        fprintf(stderr, "threshold: param 'limit' is required and must be a number\n");
        return 1;
    }
    alert_topic = edged_param("topic");
    if (!alert_topic.ptr) alert_topic = EDGED_LIT("alert");
    if (!edged_topic_valid(alert_topic)) {
        fprintf(stderr, "threshold: param 'topic' is not a valid topic\n");
        return 2;
    }
    edged_buf b;
    edged_buf_init(&b, field_json, sizeof field_json);
    edged_buf_json_string(&b, field);
    edged_buf_char(&b, '\0');
    if (b.failed) return 3;
    return 0;
}

static int edged_filter(edged_str topic, edged_str payload)
{
    edged_str raw;
    double v;
    if (edged_json_field(payload, field.ptr, &raw) != 0) return EDGED_DROP;
    if (number(raw, &v) != 0 || !(v > limit)) return EDGED_DROP;

    edged_buf t;
    edged_buf_init(&t, topic_json, sizeof topic_json);
    edged_buf_json_string(&t, topic);
    if (t.failed) return EDGED_DROP;
    int n = snprintf(scratch, sizeof scratch, "{\"topic\":%.*s,\"field\":%s,\"value\":%.*s,\"limit\":%s}",
                     (int)t.len, t.ptr, field_json, (int)raw.len, raw.ptr, limit_text.ptr);
    /* Larger than the output area: an alert cannot be shortened without
     * lying, so the reading is dropped. */
    if (n < 0 || (size_t)n >= sizeof scratch) return EDGED_DROP;
    edged_emit(alert_topic, (edged_str){scratch, (uint32_t)n});
    return EDGED_DROP;
}
