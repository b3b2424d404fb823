/* Frame analysis: level, band levels, noise floors and tone measures of one 16 ms frame.
 * The floating-point reference is edge/dsp/reference.py. */
#ifndef SA_DSP_H
#define SA_DSP_H

#include <stdint.h>

#include "sa_config.h"

/* One tone measure: strongest bin of a search band, power of it and its two neighbours,
 * and that power's share of a context band. */
typedef struct {
    uint8_t bin;
    int32_t cdb;       /* dBFS x 100 */
    uint16_t ratio_pm; /* per mille of the context band's power */
} sa_tone_t;

typedef struct {
    int32_t level_cdb;                /* unwindowed RMS, dBFS x 100 */
    int32_t band_cdb[SA_N_BANDS];     /* band levels, dBFS x 100 */
    int32_t floor_cdb[SA_N_BANDS];    /* noise floors before this frame's update */
    sa_tone_t high;                   /* 2.5-4 kHz tone within 1.5-8 kHz */
    sa_tone_t low;                    /* 437-625 Hz tone within 250-1500 Hz */
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
void sa_dsp_frame(sa_dsp_t *dsp, const int16_t x[SA_FRAME_SAMPLES], sa_features_t *out);

#endif
