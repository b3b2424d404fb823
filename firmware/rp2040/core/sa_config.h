/* Compile-time constants of the soundalert RP2040 core. Mirrored in edge/dsp/reference.py and
 * edge/dsp/patterns.py; the host tests hold the two implementations together. */
#ifndef SA_CONFIG_H
#define SA_CONFIG_H

#define SA_SAMPLE_RATE_HZ 16000
#define SA_FRAME_SAMPLES 256 /* 16 ms, frames back to back */
#define SA_FRAME_MS 16
#define SA_N_BANDS 6
#define SA_FLOOR_CDB (-12000) /* every level is clamped to -120.00 dB */

/* Levels are int32 centi-dB (0.01 dB). Names and meanings as in edge/dsp/patterns.py. */
#define SA_ON_MIN_CDB (-7000)
#define SA_ON_MARGIN_CDB 600
#define SA_FLOOR_RISE_CDB 5   /* per frame: 3.1 dB/s */
#define SA_HIGH_RATIO_PM 700  /* smoke/CO tone with its partials: share of its context band */
#define SA_LOW_RATIO_PM 600   /* 520 Hz tone alone: share of its context band */
#define SA_SNR_FULL_CDB 2000  /* a tone 20 dB above the floor has full strength */

/* Beeps (T3, 520 Hz): frames after a rise of SA_ONSET_CDB over two frames. */
#define SA_ONSET_CDB 900
#define SA_ON_WINDOW 27       /* tonal on its tone in SA_ON_FRAMES of the first SA_ON_WINDOW */
#define SA_ON_FRAMES 16       /* (0.43 s, NFPA 72's shortest beep), SA_LATE_FRAMES of them */
#define SA_LATE_START 19      /* from SA_LATE_START on (still sounding 0.3 s after it began) */
#define SA_LATE_FRAMES 3
#define SA_OFF_START 47       /* its bins SA_OFF_CDB below their peak in [OFF_START, OFF_END) */
#define SA_OFF_END 55
#define SA_OFF_CDB 1000
#define SA_ATTACK 6           /* a rise this soon after one on the same tone is that onset */
#define SA_REFRACTORY 30      /* a beep this soon after one on the same tone is part of it */
#define SA_FULLER_CDB 100     /* a later rise of one beep this much louder replaces the first */
#define SA_MIN_PULSE 3
#define SA_TRAIN_CDB 600      /* the beeps' bins this loud where a fourth beep would be */
#define SA_BEEP_WAIT 4        /* frames past a fourth beep's expected onset */
#define SA_HARMONIC_SLACK 2   /* a beep starting this close to a 520 Hz one is its harmonic */

/* Chirps (T4): peaks of the tone's level. */
#define SA_DIP_CDB 600
#define SA_FLAT_CDB 150
#define SA_CHIRP_MIN_WIDTH 3
#define SA_CHIRP_MAX_WIDTH 16
#define SA_CHIRP_MERGE 8      /* a peak this soon after the last one's start is that chirp */
#define SA_CHIRP_LEVEL_SPREAD_CDB 1200 /* the four chirps' peaks this close: one sounder */
#define SA_QUIET_CDB 500      /* a peak this far below the quietest chirp is quiet */
#define SA_TAIL 16            /* a peak this soon after the last chirp is its tail */

#define SA_MAX_BIN_SPREAD 2   /* bins of one tone (peak or partial) */
#define SA_LOW_BIN_SPREAD 1   /* the 520 Hz tone's: its whole search band is 3 bins */

/* FFT bins [first, end) searched for a tone and of the context it is compared with. */
#define SA_HIGH_SEARCH_LO 30
#define SA_HIGH_SEARCH_HI 75
#define SA_HIGH_CONTEXT_LO 24
#define SA_HIGH_CONTEXT_HI 129
#define SA_LOW_SEARCH_LO 7
#define SA_LOW_SEARCH_HI 10
#define SA_LOW_CONTEXT_LO 4
#define SA_LOW_CONTEXT_HI 24
#define SA_PARTIAL_EXCLUDE 2
#define SA_PARTIAL_NAMES 100  /* a partial at least 1/100 (-20 dB) of the tone names it */

#endif
