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

static int32_t max_component(const int32_t *re, const int32_t *im)
{
    int32_t m = 0;
    for (uint32_t i = 0; i < SA_FRAME_SAMPLES; i++) {
        int32_t a = re[i] < 0 ? -re[i] : re[i];
        int32_t b = im[i] < 0 ? -im[i] : im[i];
        m = a > m ? a : m;
        m = b > m ? b : m;
    }
    return m;
}

int sa_fft256(int32_t re[SA_FRAME_SAMPLES], int32_t im[SA_FRAME_SAMPLES])
{
    int scaled = 0;
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
        /* Components <= 2^13 grow to at most 2^14.5 in a butterfly: products stay < 2^30. */
        int halve = max_component(re, im) > (1 << 13) ? 1 : 0;
        int32_t round = halve;
        scaled += halve;
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
                re[a] = (ar + tr + round) >> halve;
                im[a] = (ai + ti + round) >> halve;
                re[b] = (ar - tr + round) >> halve;
                im[b] = (ai - ti + round) >> halve;
            }
        }
    }
    return scaled;
}
