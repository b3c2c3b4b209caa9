/*
 * What sparkplug_decode.c and sparkplug_encode.c share: nanopb and the
 * generated Sparkplug B message descriptions in the one translation unit
 * (edged.h wants exactly one), the datatype names of the specification, and
 * the topic namespace `spBv1.0/<group>/<type>/<edge node>[/<device>]`.
 *
 * Include after edged.h, edged_json.h and edged_binary.h. The Makefile puts
 * nanopb's runtime (third_party/nanopb) and the generated sparkplug_b.pb.c on
 * the include path and defines PB_SYSTEM_HEADER.
 */
#ifndef SPARKPLUG_H
#define SPARKPLUG_H

#include "pb_common.c"
#include "pb_decode.c"
#include "pb_encode.c"
#include "sparkplug/sparkplug_b.pb.c"   /* generated into $(SP_GEN) */

typedef org_eclipse_tahu_protobuf_Payload sp_payload;
typedef org_eclipse_tahu_protobuf_Payload_Metric sp_metric;
#define SP_PAYLOAD_FIELDS org_eclipse_tahu_protobuf_Payload_fields
#define SP_METRIC_FIELDS org_eclipse_tahu_protobuf_Payload_Metric_fields
#define SP_TAG(f) org_eclipse_tahu_protobuf_Payload_Metric_##f##_tag

/* Sparkplug 3.0, "Datatypes": the numbers of the DataType enum. */
enum {
    SP_UNKNOWN = 0, SP_INT8, SP_INT16, SP_INT32, SP_INT64, SP_UINT8, SP_UINT16,
    SP_UINT32, SP_UINT64, SP_FLOAT, SP_DOUBLE, SP_BOOLEAN, SP_STRING, SP_DATETIME,
    SP_TEXT, SP_UUID, SP_DATASET, SP_BYTES, SP_FILE, SP_TEMPLATE, SP_PROPERTYSET,
    SP_PROPERTYSETLIST, SP_INT8_ARRAY, SP_INT16_ARRAY, SP_INT32_ARRAY, SP_INT64_ARRAY,
    SP_UINT8_ARRAY, SP_UINT16_ARRAY, SP_UINT32_ARRAY, SP_UINT64_ARRAY, SP_FLOAT_ARRAY,
    SP_DOUBLE_ARRAY, SP_BOOLEAN_ARRAY, SP_STRING_ARRAY, SP_DATETIME_ARRAY,
    SP_DATATYPES
};

static const char *const sp_type_names[SP_DATATYPES] = {
    "Unknown", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
    "Float", "Double", "Boolean", "String", "DateTime", "Text", "UUID", "DataSet", "Bytes",
    "File", "Template", "PropertySet", "PropertySetList", "Int8Array", "Int16Array",
    "Int32Array", "Int64Array", "UInt8Array", "UInt16Array", "UInt32Array", "UInt64Array",
    "FloatArray", "DoubleArray", "BooleanArray", "StringArray", "DateTimeArray",
};

__attribute__((unused)) static const char *sp_type_name(uint32_t t)
{
    return t < SP_DATATYPES ? sp_type_names[t] : "Unknown";
}

/* The datatype named s, or -1. */
__attribute__((unused)) static int sp_type_by_name(edged_str s)
{
    for (int t = 1; t < SP_DATATYPES; t++)
        if (edged_str_eq(s, edged_cstr(sp_type_names[t]))) return t;
    return -1;
}

/* Bytes per element of a packed numeric array, 0 for other datatypes. */
__attribute__((unused)) static uint32_t sp_array_width(uint32_t t)
{
    switch (t) {
    case SP_INT8_ARRAY: case SP_UINT8_ARRAY: return 1;
    case SP_INT16_ARRAY: case SP_UINT16_ARRAY: return 2;
    case SP_INT32_ARRAY: case SP_UINT32_ARRAY: case SP_FLOAT_ARRAY: return 4;
    case SP_INT64_ARRAY: case SP_UINT64_ARRAY: case SP_DOUBLE_ARRAY: case SP_DATETIME_ARRAY: return 8;
    default: return 0;
    }
}

/* Message types of the topic namespace. */
enum { SP_NBIRTH, SP_NDEATH, SP_DBIRTH, SP_DDEATH, SP_NDATA, SP_DDATA, SP_NCMD, SP_DCMD, SP_STATE, SP_OTHER };
static const char *const sp_msg_names[] = {
    "NBIRTH", "NDEATH", "DBIRTH", "DDEATH", "NDATA", "DDATA", "NCMD", "DCMD", "STATE",
};

typedef struct {
    int type;
    edged_str group, node, device;  /* device.len 0 for node messages */
} sp_topic;

/* Split the topic; 0, or -1 when it is not in the Sparkplug B namespace. */
static int sp_parse_topic(edged_str t, sp_topic *out)
{
    edged_str part[6];
    int n = 0;
    uint32_t start = 0;
    for (uint32_t i = 0; i <= t.len; i++) {
        if (i == t.len || t.ptr[i] == '/') {
            if (n == 6) return -1;
            part[n].ptr = t.ptr + start;
            part[n].len = i - start;
            n++;
            start = i + 1;
        }
    }
    if (n < 2 || !edged_str_eq(part[0], EDGED_LIT("spBv1.0"))) return -1;
    if (edged_str_eq(part[1], EDGED_LIT("STATE"))) {
        out->type = SP_STATE;
        return 0;
    }
    if (n < 4 || part[1].len == 0 || part[3].len == 0) return -1;
    out->type = SP_OTHER;
    for (int k = 0; k < SP_STATE; k++)
        if (edged_str_eq(part[2], edged_cstr(sp_msg_names[k]))) out->type = k;
    if (out->type == SP_OTHER) return -1;
    int device_msg = out->type == SP_DBIRTH || out->type == SP_DDEATH ||
                     out->type == SP_DDATA || out->type == SP_DCMD;
    if (n != (device_msg ? 5 : 4)) return -1;
    if (device_msg && part[4].len == 0) return -1;
    out->group = part[1];
    out->node = part[3];
    out->device = device_msg ? part[4] : (edged_str){ 0, 0 };
    return 0;
}

/* A topic level from text that may hold '/', '+', '#' or NUL: the wildcards
 * and NUL become '_' ('/' is kept: a metric name's folders become levels). */
__attribute__((unused)) static void sp_buf_level(edged_buf *b, edged_str s)
{
    for (uint32_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        edged_buf_char(b, (c == '+' || c == '#' || c == '\0') ? '_' : c);
    }
}

/* ---- nanopb streams over edged_str and edged_buf ------------------------ */

static bool sp_buf_write(pb_ostream_t *stream, const pb_byte_t *data, size_t n)
{
    return edged_buf_bytes((edged_buf *)stream->state, data, (uint32_t)n) == 0;
}

__attribute__((unused)) static pb_ostream_t sp_ostream(edged_buf *b)
{
    pb_ostream_t s = { sp_buf_write, b, SIZE_MAX, 0, 0 };
    return s;
}

/* Encode one metric as a Payload.metrics element from an encode callback. */
__attribute__((unused)) static bool sp_encode_metric(pb_ostream_t *stream, const pb_field_t *field, const sp_metric *m)
{
    return pb_encode_tag_for_field(stream, field) &&
           pb_encode_submessage(stream, SP_METRIC_FIELDS, m);
}

#endif
