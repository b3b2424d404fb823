#include "sa_proto.h"

#include <stdbool.h>

uint16_t sa_crc16(const uint8_t *data, size_t len)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(data[i] << 8);
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

/* A line under construction; overflow is sticky and turns the whole line into length 0. */
typedef struct {
    char *buf;
    size_t len;
    bool overflow;
} line_t;

static void put_char(line_t *l, char c)
{
    /* Room is kept for "*XXXX\r\n" (7 bytes). */
    if (l->len + 7 >= SA_PROTO_MAX_LINE) {
        l->overflow = true;
        return;
    }
    l->buf[l->len++] = c;
}

static void put_str(line_t *l, const char *s)
{
    while (*s != '\0') {
        put_char(l, *s++);
    }
}

static void put_u32(line_t *l, uint32_t v)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    while (n > 0) {
        put_char(l, digits[--n]);
    }
}

/* A fixed-point value with `decimals` digits after the point: 1234, 2 -> "12.34". */
static void put_fixed(line_t *l, int32_t v, uint32_t decimals)
{
    uint32_t scale = 1;
    for (uint32_t i = 0; i < decimals; i++) {
        scale *= 10u;
    }
    uint32_t mag = v < 0 ? (uint32_t)(-(int64_t)v) : (uint32_t)v;
    if (v < 0) {
        put_char(l, '-');
    }
    put_u32(l, mag / scale);
    put_char(l, '.');
    uint32_t frac = mag % scale;
    for (uint32_t div = scale / 10u; div > 0; div /= 10u) {
        put_char(l, (char)('0' + (frac / div) % 10u));
    }
}

/* Identifiers: [A-Za-z0-9._-], at most SA_PROTO_MAX_ID characters; others become '_'. */
static void put_id(line_t *l, const char *s)
{
    size_t n = 0;
    for (; *s != '\0' && n < SA_PROTO_MAX_ID; s++, n++) {
        char c = *s;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        put_char(l, ok ? c : '_');
    }
    if (n == 0) {
        put_char(l, '_');
    }
}

static line_t begin(sa_proto_t *p, char *out, uint32_t uptime_ms, const char *type)
{
    line_t l = {out, 0, false};
    put_str(&l, "$SA1,");
    put_u32(&l, p->seq);
    put_char(&l, ',');
    put_u32(&l, uptime_ms);
    put_char(&l, ',');
    put_str(&l, type);
    return l;
}

static size_t finish(sa_proto_t *p, line_t *l)
{
    static const char hex[] = "0123456789ABCDEF";
    if (l->overflow) {
        return 0;
    }
    uint16_t crc = sa_crc16((const uint8_t *)l->buf + 1, l->len - 1);
    l->buf[l->len++] = '*';
    for (int shift = 12; shift >= 0; shift -= 4) {
        l->buf[l->len++] = hex[(crc >> shift) & 0xFu];
    }
    l->buf[l->len++] = '\r';
    l->buf[l->len++] = '\n';
    p->seq = (uint16_t)(p->seq + 1u);
    return l->len;
}

void sa_proto_init(sa_proto_t *p)
{
    p->seq = 0;
}

size_t sa_proto_hello(sa_proto_t *p, char *out, uint32_t uptime_ms, const char *board_id,
                      const char *fw_version)
{
    line_t l = begin(p, out, uptime_ms, "HELLO");
    put_char(&l, ',');
    put_id(&l, board_id);
    put_char(&l, ',');
    put_id(&l, fw_version);
    put_char(&l, ',');
    put_u32(&l, SA_SAMPLE_RATE_HZ);
    put_char(&l, ',');
    put_u32(&l, SA_N_BANDS);
    return finish(p, &l);
}

size_t sa_proto_detection(sa_proto_t *p, char *out, uint32_t uptime_ms, const char *detector,
                          uint16_t confidence_pm, uint32_t onset_ms, uint16_t tone_hz,
                          uint16_t cycle)
{
    line_t l = begin(p, out, uptime_ms, "DET");
    put_char(&l, ',');
    put_id(&l, detector);
    put_char(&l, ',');
    put_fixed(&l, confidence_pm > 1000 ? 1000 : confidence_pm, 3);
    put_char(&l, ',');
    put_u32(&l, onset_ms);
    put_char(&l, ',');
    put_u32(&l, tone_hz);
    put_char(&l, ',');
    put_u32(&l, cycle);
    return finish(p, &l);
}

size_t sa_proto_level(sa_proto_t *p, char *out, uint32_t uptime_ms, int32_t level_cdb,
                      const int32_t band_cdb[SA_N_BANDS])
{
    line_t l = begin(p, out, uptime_ms, "LEVEL");
    put_char(&l, ',');
    put_fixed(&l, level_cdb, 2);
    for (int b = 0; b < SA_N_BANDS; b++) {
        put_char(&l, ',');
        put_fixed(&l, band_cdb[b], 2);
    }
    return finish(p, &l);
}

size_t sa_proto_heartbeat(sa_proto_t *p, char *out, uint32_t uptime_ms, uint32_t frames,
                          uint32_t overruns)
{
    line_t l = begin(p, out, uptime_ms, "HB");
    put_char(&l, ',');
    put_u32(&l, frames);
    put_char(&l, ',');
    put_u32(&l, overruns);
    return finish(p, &l);
}

size_t sa_proto_error(sa_proto_t *p, char *out, uint32_t uptime_ms, sa_error_code_t code,
                      uint32_t value)
{
    static const char *const names[] = {"overrun", "mic", "tx", "internal"};
    line_t l = begin(p, out, uptime_ms, "ERR");
    put_char(&l, ',');
    put_str(&l, (unsigned)code < 4u ? names[code] : "internal");
    put_char(&l, ',');
    put_u32(&l, value);
    return finish(p, &l);
}
