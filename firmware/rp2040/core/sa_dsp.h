/* Frame analysis: level, band levels, noise floors and tone measures of one 16 ms frame.
 * The floating-point reference is edge/dsp/reference.py. */
#ifndef SA_DSP_H
#define SA_DSP_H

#include <stdint.h>

#include "sa_config.h"

/* One tone measure: strongest bin of a search band, power of it and its two neighbours,
 * the search band's power, and shares of a context band: of the tone alone and of the tone with
 * its two strongest partials (local maxima of the context band more than SA_PARTIAL_EXCLUDE
 * bins from the tone and from each other). */
typedef struct {
    uint8_t bin;
    uint8_t alt;        /* bin of the strongest partial if within 20 dB of the tone, else 0 */
    int32_t cdb;        /* dBFS x 100 */
    int32_t search_cdb; /* the whole search band, dBFS x 100 */
    uint16_t main_pm;   /* the tone's share of the context band, per mille */
    uint16_t ratio_pm;  /* the tone's and its two partials' share, per mille */
} sa_tone_t;

typedef struct {
    int32_t level_cdb;                /* unwindowed RMS, dBFS x 100 */
    int32_t band_cdb[SA_N_BANDS];     /* band levels, dBFS x 100 */
    int32_t floor_cdb[SA_N_BANDS];    /* noise floors before this frame's update */
    sa_tone_t high;                   /* 1.875-4.625 kHz tone within 1.5-8 kHz */
    sa_tone_t low;                    /* 437-625 Hz tone within 250-1500 Hz */
    /* The frame's power spectrum (|X_k|^2 at the FFT's scale) and that scale, for the level of
     * any bin: sa_features_tri_cdb(). */
    uint32_t power[SA_FRAME_SAMPLES / 2 + 1];
    int32_t shift;
} sa_features_t;

typedef struct {
    int32_t floor_cdb[SA_N_BANDS];
    /* Work buffers: static storage inside the state, never on the stack. */
    int32_t re[SA_FRAME_SAMPLES];
    int32_t im[SA_FRAME_SAMPLES];
    uint32_t power[SA_FRAME_SAMPLES / 2 + 1];
} sa_dsp_t;

/* FFT bin ranges [first, end) of the bands. */
extern const uint8_t sa_band_bins[SA_N_BANDS][2];

void sa_dsp_init(sa_dsp_t *dsp);
/* Power of `bin` and its two neighbours in dBFS x 100 (SA_FLOOR_CDB at bins 0 and N/2). */
int32_t sa_features_tri_cdb(const sa_features_t *f, uint32_t bin);
void sa_dsp_frame(sa_dsp_t *dsp, const int16_t x[SA_FRAME_SAMPLES], sa_features_t *out);

#endif
