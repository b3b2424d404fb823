#include "sa_dsp.h"

#include <stdbool.h>
#include <string.h>

#include "sa_fft.h"
#include "sa_fixed.h"
#include "sa_tables.h"

/* Band power = sum_k c_k |X_k|^2 / (N sum w^2), c_k = 2 below Nyquist. The windowed frame is
 * x * w * 2^30 / 2^r (q15 samples times q15 window, normalised down by 2^r) and the FFT returns
 * DFT / 2^s, so with shift = r + s - 8 this is, in centi-dB:
 *   cdb(sum c_k P_k) + 2 shift 301.03 + SA_K_BAND   (-44*301.03 - 1000*log10(256*96)) */
#define SA_K_BAND (-17636)
/* Mean square of int16 samples in full-scale units: cdb(sum x^2) - 1000*log10(256 * 2^30). */
#define SA_K_LEVEL (-11439)

const uint8_t sa_band_bins[SA_N_BANDS][2] = {
    {1, 7}, {7, 10}, {10, 24}, {24, 40}, {40, 65}, {65, 129},
};

static int32_t clamp_floor(int32_t cdb)
{
    return cdb < SA_FLOOR_CDB ? SA_FLOOR_CDB : cdb;
}

static int32_t spectrum_cdb(uint64_t one_sided_sum, int shift)
{
    if (one_sided_sum == 0) {
        return SA_FLOOR_CDB;
    }
    int32_t scale = shift * 60206;
    scale = (scale + (scale < 0 ? -50 : 50)) / 100;
    return clamp_floor(sa_cdb64(one_sided_sum) + scale + SA_K_BAND);
}

static uint64_t sum_power(const uint32_t *power, uint32_t lo, uint32_t hi)
{
    uint64_t s = 0;
    for (uint32_t k = lo; k < hi; k++) {
        s += power[k];
    }
    return s;
}

/* The strongest local maximum (>= both neighbours, > 0) of power[lo..hi) more than
 * SA_PARTIAL_EXCLUDE bins from `a` and from `b` (0: no such bin); 0 if there is none. */
static uint32_t partial(const uint32_t *power, uint32_t lo, uint32_t hi, uint32_t a, uint32_t b)
{
    uint32_t best = 0;
    uint32_t best_power = 0;
    for (uint32_t k = lo; k < hi && k < SA_FRAME_SAMPLES / 2; k++) {
        uint32_t da = k > a ? k - a : a - k;
        uint32_t db = k > b ? k - b : b - k;
        if (da <= SA_PARTIAL_EXCLUDE || (b != 0 && db <= SA_PARTIAL_EXCLUDE)) {
            continue;
        }
        if (power[k] > best_power && power[k] >= power[k - 1] && power[k] >= power[k + 1]) {
            best = k;
            best_power = power[k];
        }
    }
    return best;
}

static uint64_t tri(const uint32_t *power, uint32_t k)
{
    return (uint64_t)power[k - 1] + power[k] + power[k + 1];
}

static uint16_t share_pm(uint64_t part, uint64_t whole)
{
    if (whole == 0) {
        return 0;
    }
    return (uint16_t)((part > whole ? whole : part) * 1000u / whole);
}

static void tone(const uint32_t *power, uint32_t lo, uint32_t hi, uint32_t ctx_lo,
                 uint32_t ctx_hi, int shift, sa_tone_t *out)
{
    uint32_t peak = lo;
    for (uint32_t k = lo + 1; k < hi; k++) {
        if (power[k] > power[peak]) {
            peak = k;
        }
    }
    uint64_t t = tri(power, peak);
    uint64_t ctx = sum_power(power, ctx_lo, ctx_hi);
    /* A tone outside the search band leaks into its edge bin, which is then no peak of its
     * own: its partials (the tone itself among them) do not count. */
    bool own = power[peak] >= power[peak - 1] && power[peak] >= power[peak + 1];
    uint32_t alt = own ? partial(power, ctx_lo, ctx_hi, peak, 0) : 0;
    uint64_t with = t;
    uint32_t named = 0;
    if (alt != 0) {
        uint64_t a = tri(power, alt);
        with += a;
        /* Only a partial within 20 dB of the tone names it (a pure tone's is the noise's). */
        named = a * SA_PARTIAL_NAMES >= t ? alt : 0;
        uint32_t second = partial(power, ctx_lo, ctx_hi, peak, alt);
        if (second != 0) {
            with += tri(power, second);
        }
    }
    out->bin = (uint8_t)peak;
    out->alt = (uint8_t)named;
    out->cdb = spectrum_cdb(2 * t, shift);
    out->search_cdb = spectrum_cdb(2 * sum_power(power, lo, hi), shift);
    out->main_pm = share_pm(t, ctx);
    out->ratio_pm = share_pm(with, ctx);
}

int32_t sa_features_tri_cdb(const sa_features_t *f, uint32_t bin)
{
    if (bin == 0 || bin >= SA_FRAME_SAMPLES / 2) {
        return SA_FLOOR_CDB;
    }
    return spectrum_cdb(2 * tri(f->power, bin), f->shift);
}

void sa_dsp_init(sa_dsp_t *dsp)
{
    memset(dsp, 0, sizeof *dsp);
    for (int b = 0; b < SA_N_BANDS; b++) {
        dsp->floor_cdb[b] = SA_ON_MIN_CDB;
    }
}

void sa_dsp_frame(sa_dsp_t *dsp, const int16_t x[SA_FRAME_SAMPLES], sa_features_t *out)
{
    uint64_t sumsq = 0;
    int32_t maxabs = 0;
    for (uint32_t n = 0; n < SA_FRAME_SAMPLES; n++) {
        int32_t s = x[n];
        sumsq += (uint64_t)(s * s);
        int32_t w = s * sa_hann_q15[n];
        dsp->re[n] = w;
        int32_t a = w < 0 ? -w : w;
        if (a > maxabs) {
            maxabs = a;
        }
    }
    out->level_cdb = sumsq == 0 ? SA_FLOOR_CDB : clamp_floor(sa_cdb64(sumsq) + SA_K_LEVEL);

    /* Block floating point: keep the windowed frame within 13 bits for the FFT. */
    int shift = maxabs == 0 ? 0 : sa_msb64((uint64_t)maxabs) + 1 - 13;
    if (shift < 0) {
        shift = 0;
    }
    for (uint32_t n = 0; n < SA_FRAME_SAMPLES; n++) {
        if (shift > 0) {
            dsp->re[n] = (dsp->re[n] + (1 << (shift - 1))) >> shift;
        }
        dsp->im[n] = 0;
    }
    int r = shift;
    shift = r + sa_fft256(dsp->re, dsp->im) - 8;
    for (uint32_t k = 0; k <= SA_FRAME_SAMPLES / 2; k++) {
        dsp->power[k] = (uint32_t)(dsp->re[k] * dsp->re[k] + dsp->im[k] * dsp->im[k]);
    }
    memcpy(out->power, dsp->power, sizeof out->power);
    out->shift = shift;

    for (int b = 0; b < SA_N_BANDS; b++) {
        uint32_t lo = sa_band_bins[b][0];
        uint32_t hi = sa_band_bins[b][1];
        uint64_t s = 2 * sum_power(dsp->power, lo, hi);
        if (hi > SA_FRAME_SAMPLES / 2) {
            s -= dsp->power[SA_FRAME_SAMPLES / 2]; /* Nyquist counts once */
        }
        out->band_cdb[b] = spectrum_cdb(s, shift);
    }
    tone(dsp->power, SA_HIGH_SEARCH_LO, SA_HIGH_SEARCH_HI, SA_HIGH_CONTEXT_LO,
         SA_HIGH_CONTEXT_HI, shift, &out->high);
    tone(dsp->power, SA_LOW_SEARCH_LO, SA_LOW_SEARCH_HI, SA_LOW_CONTEXT_LO, SA_LOW_CONTEXT_HI,
         shift, &out->low);

    /* Noise floors start at SA_ON_MIN_CDB, follow a falling level at once and a rising one
     * by SA_FLOOR_RISE_CDB per frame. */
    for (int b = 0; b < SA_N_BANDS; b++) {
        out->floor_cdb[b] = dsp->floor_cdb[b];
        int32_t risen = dsp->floor_cdb[b] + SA_FLOOR_RISE_CDB;
        dsp->floor_cdb[b] = out->band_cdb[b] < risen ? out->band_cdb[b] : risen;
    }
}
