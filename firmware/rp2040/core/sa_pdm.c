#include "sa_pdm.h"

#include <string.h>

/* step[v][j]: what the 8 bits of byte v (most significant first, 1 -> +1, 0 -> -1) add to
 * integrator j when the integrators start from zero. A bit with m steps left (8 for the
 * first, 1 for the last) adds 1, m, m(m+1)/2 and m(m+1)(m+2)/6 to integrators 0..3. */
static int16_t step[256][4];
static int step_ready;

static void fill_steps(void)
{
    for (unsigned v = 0; v < 256u; v++) {
        int32_t s[4] = {0, 0, 0, 0};
        for (int32_t k = 0; k < 8; k++) {
            int32_t x = (v >> (7 - k)) & 1u ? 1 : -1;
            int32_t m = 8 - k;
            s[0] += x;
            s[1] += x * m;
            s[2] += x * m * (m + 1) / 2;
            s[3] += x * m * (m + 1) * (m + 2) / 6;
        }
        for (int j = 0; j < 4; j++) {
            step[v][j] = (int16_t)s[j];
        }
    }
    step_ready = 1;
}

void sa_pdm_init(sa_pdm_t *d)
{
    memset(d, 0, sizeof *d);
    if (!step_ready) {
        fill_steps();
    }
}

void sa_pdm_decimate(sa_pdm_t *d, const uint32_t *words, int16_t *pcm, size_t n)
{
    uint32_t i0 = d->integ[0], i1 = d->integ[1], i2 = d->integ[2], i3 = d->integ[3];
    for (size_t out = 0; out < n; out++) {
        for (unsigned w = 0; w < SA_PDM_WORDS_PER_SAMPLE; w++) {
            uint32_t word = *words++;
            for (int shift = 24; shift >= 0; shift -= 8) {
                const int16_t *s = step[(word >> shift) & 0xffu];
                /* Eight integrator steps at once: each uses the others' values from before. */
                i3 += 8u * i2 + 36u * i1 + 120u * i0 + (uint32_t)(int32_t)s[3];
                i2 += 8u * i1 + 36u * i0 + (uint32_t)(int32_t)s[2];
                i1 += 8u * i0 + (uint32_t)(int32_t)s[1];
                i0 += (uint32_t)(int32_t)s[0];
            }
        }
        uint32_t y = i3;
        for (int c = 0; c < 4; c++) {
            uint32_t prev = d->comb[c];
            d->comb[c] = y;
            y -= prev;
        }
        /* Gain 64^4 = 2^24: the top 16 bits of a 25-bit signed result (arithmetic shift, as
         * gcc and clang define it: no dead zone around 0; the DC blocker takes the -0.5 LSB
         * bias out). */
        int32_t v = (int32_t)y >> 9;
        /* DC blocker, pole 32604 / 32768 (0.995, about 13 Hz at 16 kHz); |dc_y| stays within
         * 2 * 32768, so the product fits in int32. */
        d->dc_y = v - d->dc_x + (d->dc_y * 32604) / 32768;
        d->dc_x = v;
        pcm[out] = (int16_t)(d->dc_y > 32767 ? 32767 : (d->dc_y < -32768 ? -32768 : d->dc_y));
    }
    d->integ[0] = i0;
    d->integ[1] = i1;
    d->integ[2] = i2;
    d->integ[3] = i3;
}
