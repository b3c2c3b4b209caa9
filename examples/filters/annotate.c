/*
 * annotate: sets MQTT 5 properties on each message it passes on, and refuses
 * the ones that lack a user property it requires.
 *
 * params (all optional):
 *   content_type   content type to set (e.g. application/json)
 *   property       name of a user property to add, with
 *   value          its value
 *   require        name of a user property every input must carry (e.g.
 *                  traceparent); an input without it is refused (REJECT) with
 *                  the reason, and lands in the dead letters
 * Topic and payload go on unchanged; what the filter does not set comes from
 * the input as the output rule says (docs/properties.md).
 */
#define EDGED_WITH_INIT
#define EDGED_WITH_PROPERTIES
#include "edged.h"

static edged_str content_type, property, value, require;
static char reason[160];

static int edged_filter_init(void)
{
    content_type = edged_param("content_type");
    property = edged_param("property");
    value = edged_param("value");
    require = edged_param("require");
    if ((property.ptr != 0) != (value.ptr != 0)) {
        edged_log(EDGED_LOG_ERROR, "annotate: params 'property' and 'value' go together");
        return 1;
    }
    if (require.ptr && require.len > 100) {
        edged_log(EDGED_LOG_ERROR, "annotate: param 'require' is over 100 bytes");
        return 2;
    }
    return 0;
}

static int edged_filter(edged_str topic, edged_str payload)
{
    edged_str found;
    if (require.ptr && !edged_user_property(require, &found)) {
        edged_buf why = { reason, 0, sizeof(reason), 0 };
        edged_buf_append(&why, EDGED_LIT("missing user property "));
        edged_buf_append(&why, require);
        return edged_reject((edged_str){ why.ptr, why.len });
    }
    if (content_type.ptr) edged_set_content_type(content_type);
    if (property.ptr) edged_set_user_property(property, value);
    edged_emit(topic, payload);
    return EDGED_EMIT;
}
