/*
 * threshold: turns readings above a limit into one alert message.
 *
 * params: field (default "value"), limit (required), topic (default "alert")
 * A JSON object whose `field` is a number strictly greater than `limit`
 * becomes one message on `topic`:
 *   {"topic":"<input topic>","field":"<field>","value":<raw>,"limit":<limit>}
 * Everything else is dropped.
 */
#define EDGED_WITH_INIT
#include "edged.h"

static edged_str field;
static edged_str limit_text;    /* echoed as written in the config */
static double limit;
static edged_str alert_topic;
static char scratch[EDGED_OUTPUT_CAP];

static int edged_filter_init(void)
{
    field = edged_param("field");
    if (!field.ptr) field = EDGED_LIT("value");
    limit_text = edged_param("limit");
    if (!limit_text.ptr || edged_parse_number(limit_text, &limit) != 0) {
        edged_log(EDGED_LOG_ERROR, "threshold: param 'limit' is required and must be a number");
        return 1;
    }
    alert_topic = edged_param("topic");
    if (!alert_topic.ptr) alert_topic = EDGED_LIT("alert");
    /* Checked here because a bad topic would otherwise fail every alert. */
    if (!edged_topic_valid(alert_topic)) {
        edged_log(EDGED_LOG_ERROR, "threshold: param 'topic' is not a valid topic");
        return 2;
    }
    return 0;
}

static int edged_filter(edged_str topic, edged_str payload)
{
    edged_str raw;
    double v;
    if (edged_json_field(payload, field.ptr, &raw) != 0) return EDGED_DROP;
    if (edged_parse_number(raw, &v) != 0 || !(v > limit)) return EDGED_DROP;

    edged_buf b;
    edged_buf_init(&b, scratch, sizeof scratch);
    edged_buf_cstr(&b, "{\"topic\":");
    edged_buf_json_string(&b, topic);
    edged_buf_cstr(&b, ",\"field\":");
    edged_buf_json_string(&b, field);
    edged_buf_cstr(&b, ",\"value\":");
    edged_buf_append(&b, raw);
    edged_buf_cstr(&b, ",\"limit\":");
    edged_buf_append(&b, limit_text);
    edged_buf_char(&b, '}');
    if (b.failed) {
        /* Larger than the output area: an alert cannot be shortened without
         * lying, so the reading is dropped. */
        return EDGED_DROP;
    }
    edged_emit(alert_topic, edged_buf_str(&b));
    return EDGED_DROP;
}
