/* Compile-time constants of the soundalert RP2040 core. Mirrored in edge/dsp/reference.py and
 * edge/dsp/patterns.py; the host tests hold the two implementations together. */
#ifndef SA_CONFIG_H
#define SA_CONFIG_H

#define SA_SAMPLE_RATE_HZ 16000
#define SA_FRAME_SAMPLES 256 /* 16 ms, frames back to back */
#define SA_FRAME_MS 16
#define SA_N_BANDS 6
#define SA_FLOOR_CDB (-12000) /* every level is clamped to -120.00 dB */

/* Levels are int32 centi-dB (0.01 dB). */
#define SA_ON_MIN_CDB (-7000)
#define SA_ON_MARGIN_CDB 600
#define SA_FLOOR_RISE_CDB 5   /* per frame: 3.1 dB/s */
#define SA_REL_CDB 1200       /* a tonal frame counts within 12 dB of the recent loudest... */
#define SA_REF_DECAY_CDB 2    /* ...which decays 1.25 dB/s */
#define SA_HIGH_RATIO_PM 500  /* tone share of its context band, per mille */
#define SA_LOW_RATIO_PM 600
#define SA_SNR_FULL_CDB 2000  /* a tone 20 dB above the floor has full strength */

#define SA_MERGE_GAP 2        /* frames of dropout bridged inside a pulse */
#define SA_MIN_PULSE 3        /* shorter runs are ignored */
#define SA_MAX_BIN_SPREAD 2   /* peak bins of one pattern's pulses */
#define SA_SNR_FRAMES_MAX 1024

/* FFT bins [first, end) searched for a tone and of the context it is compared with. */
#define SA_HIGH_SEARCH_LO 40
#define SA_HIGH_SEARCH_HI 65
#define SA_HIGH_CONTEXT_LO 24
#define SA_HIGH_CONTEXT_HI 129
#define SA_LOW_SEARCH_LO 7
#define SA_LOW_SEARCH_HI 10
#define SA_LOW_CONTEXT_LO 4
#define SA_LOW_CONTEXT_HI 24
#define SA_HIGH_BAND 4
#define SA_LOW_BAND 1

#endif
