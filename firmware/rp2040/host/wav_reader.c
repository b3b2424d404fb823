#include "wav_reader.h"

#include <string.h>

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint16_t le16(const uint8_t *b)
{
    return (uint16_t)(b[0] | b[1] << 8);
}

static bool skip(FILE *f, uint32_t n)
{
    uint8_t buf[256];
    while (n > 0) {
        size_t take = n < sizeof buf ? n : sizeof buf;
        if (fread(buf, 1, take, f) != take) {
            return false;
        }
        n -= (uint32_t)take;
    }
    return true;
}

const char *wav_open(wav_reader_t *r, FILE *f, bool raw)
{
    r->f = f;
    r->raw = raw;
    r->remaining = UINT64_MAX;
    if (raw) {
        return NULL;
    }
    uint8_t hdr[12];
    if (fread(hdr, 1, 12, f) != 12 || memcmp(hdr, "RIFF", 4) != 0 || memcmp(hdr + 8, "WAVE", 4) != 0) {
        return "not a RIFF/WAVE file";
    }
    bool have_fmt = false;
    for (;;) {
        uint8_t ch[8];
        if (fread(ch, 1, 8, f) != 8) {
            return "no data chunk";
        }
        uint32_t size = le32(ch + 4);
        if (memcmp(ch, "fmt ", 4) == 0) {
            uint8_t fmt[16];
            if (size < 16 || fread(fmt, 1, 16, f) != 16 || !skip(f, size - 16 + (size & 1u))) {
                return "truncated fmt chunk";
            }
            uint16_t format = le16(fmt);
            if ((format != 1 && format != 0xFFFE) || le16(fmt + 2) != 1 || le32(fmt + 4) != 16000 ||
                le16(fmt + 14) != 16) {
                return "need 16 kHz mono 16-bit PCM";
            }
            have_fmt = true;
        } else if (memcmp(ch, "data", 4) == 0) {
            if (!have_fmt) {
                return "data chunk before fmt chunk";
            }
            r->remaining = size;
            return NULL;
        } else if (!skip(f, size + (size & 1u))) {
            return "truncated chunk";
        }
    }
}

size_t wav_read(wav_reader_t *r, int16_t *out, size_t n)
{
    uint8_t buf[2 * 4096];
    if (n > 4096) {
        n = 4096;
    }
    if (r->remaining / 2 < n) {
        n = (size_t)(r->remaining / 2);
    }
    size_t got = fread(buf, 2, n, r->f);
    for (size_t i = 0; i < got; i++) {
        out[i] = (int16_t)le16(buf + 2 * i);
    }
    if (r->remaining != UINT64_MAX) {
        r->remaining -= 2 * got;
    }
    return got;
}
