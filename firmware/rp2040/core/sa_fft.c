#include "sa_fft.h"

#include "sa_tables.h"

static uint32_t bit_reverse8(uint32_t v)
{
    uint32_t r = 0;
    for (int i = 0; i < 8; i++) {
        r = (r << 1) | (v & 1u);
        v >>= 1;
    }
    return r;
}

void sa_fft256(int32_t re[SA_FRAME_SAMPLES], int32_t im[SA_FRAME_SAMPLES])
{
    for (uint32_t i = 0; i < SA_FRAME_SAMPLES; i++) {
        uint32_t j = bit_reverse8(i);
        if (j > i) {
            int32_t t = re[i];
            re[i] = re[j];
            re[j] = t;
            t = im[i];
            im[i] = im[j];
            im[j] = t;
        }
    }
    for (uint32_t len = 2; len <= SA_FRAME_SAMPLES; len <<= 1) {
        uint32_t half = len / 2;
        uint32_t step = SA_FRAME_SAMPLES / len;
        for (uint32_t base = 0; base < SA_FRAME_SAMPLES; base += len) {
            for (uint32_t k = 0; k < half; k++) {
                /* w = exp(-2 pi j k step / N) = cos - j sin */
                int32_t wr = sa_cos_q15[k * step];
                int32_t wi = -(int32_t)sa_sin_q15[k * step];
                uint32_t a = base + k;
                uint32_t b = a + half;
                int32_t tr = (re[b] * wr - im[b] * wi + (1 << 14)) >> 15;
                int32_t ti = (re[b] * wi + im[b] * wr + (1 << 14)) >> 15;
                int32_t ar = re[a];
                int32_t ai = im[a];
                re[a] = (ar + tr + 1) >> 1;
                im[a] = (ai + ti + 1) >> 1;
                re[b] = (ar - tr + 1) >> 1;
                im[b] = (ai - ti + 1) >> 1;
            }
        }
    }
}
