/*
 * {{name}}: forwards readings at or above a minimum and drops everything else.
 *
 * params: field (default "value"), min (default 0)
 * A JSON object whose `field` is a number >= `min` goes on unchanged; anything else
 * (smaller readings, other fields, payloads that are not JSON) is dropped.
 *
 * The C SDK is sdk/c/edged.h (copied next to this file); its README lists the API:
 * edged_emit to publish new messages, EDGED_WITH_TICK for periodic summaries.
 */
#define EDGED_WITH_INIT
#include "edged.h"

static edged_str field;
static double min;

/* Called once with the params; a non-zero result refuses the module. */
static int edged_filter_init(void)
{
    field = edged_param("field");
    if (!field.ptr) field = EDGED_LIT("value");
    if (edged_param_number_strict("min", 0, &min) != 0) {
        edged_log(EDGED_LOG_ERROR, "{{name}}: param 'min' must be a number");
        return 1;
    }
    return 0;
}

/* Called once per message: EDGED_FORWARD, EDGED_DROP, or edged_emit new messages. */
static int edged_filter(edged_str topic, edged_str payload)
{
    edged_str raw;
    double v;
    (void)topic;
    if (edged_json_field(payload, field.ptr, &raw) != 0) return EDGED_DROP;
    if (edged_parse_number(raw, &v) != 0) return EDGED_DROP;
    return v >= min ? EDGED_FORWARD : EDGED_DROP;
}
