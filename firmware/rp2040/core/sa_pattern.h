/* Deterministic NFPA 72 temporal-pattern detectors: T3 smoke, T4 CO, 520 Hz low-frequency T3.
 * The same algorithm, in floating point, is edge/dsp/patterns.py (see its docstring): beeps are
 * sharp rises of a tone checked over the following 0.88 s; T4 chirps are peaks of its level. */
#ifndef SA_PATTERN_H
#define SA_PATTERN_H

#include <stdbool.h>
#include <stdint.h>

#include "sa_dsp.h"

typedef enum { SA_DET_T3 = 0, SA_DET_T4 = 1, SA_DET_LF520 = 2 } sa_detector_t;

/* A three-beep pattern (T3, 520 Hz), in 16 ms frames (periods: onset to onset). */
typedef struct {
    sa_detector_t kind;
    uint16_t period_min, period_max, period_nominal_ms, period_spread;
    uint16_t cycle_gap_max; /* a cycle starting this soon after the last one is its next */
} sa_beep_timing_t;

/* The four-chirp pattern (T4), in 16 ms frames. */
typedef struct {
    sa_detector_t kind;
    uint8_t chirps;
    uint16_t period_min, period_max, period_nominal_ms;
    uint16_t jitter_half_frames; /* a chirp's time this far from its cycle's regular grid */
    uint16_t quiet_before, quiet_after, cycle_gap_max;
} sa_chirp_timing_t;

typedef struct {
    sa_detector_t kind;
    uint16_t confidence_pm; /* 0..1000 */
    uint32_t onset_frame;   /* frame where the cycle's first beep or chirp began */
    uint32_t confirm_frame; /* frame that confirmed it */
    uint16_t tone_hz;
    uint16_t cycle;         /* 1, 2, ... for back-to-back cycles of one alarm */
} sa_detection_t;

#define SA_MAX_DETECTIONS_PER_FRAME 3
#define SA_BEEP_RING 8
#define SA_CHIRP_RING 16
#define SA_MAX_ONSETS 6

typedef struct {
    uint8_t bin, alt;
    uint8_t spread; /* bins apart that are still this tone */
} sa_tone_id_t;

/* A beep (start: its onset) or a chirp (start: its rise, end: its fall). */
typedef struct {
    uint32_t start, end;
    sa_tone_id_t tone;
    int32_t snr_cdb;
    int32_t peak_cdb;
} sa_pulse_t;

/* A rise of the tone being watched to see whether it is a beep. */
typedef struct {
    uint32_t start;
    sa_tone_id_t tone;
    int32_t peak_cdb, off_cdb, snr_sum;
    uint16_t on_frames, late_frames;
} sa_onset_t;

typedef struct {
    bool has_last;
    uint32_t last_start;
    uint16_t last;
} sa_cycles_t;

typedef struct sa_beeps {
    const sa_beep_timing_t *timing;
    const struct sa_beeps *shadow; /* the 520 Hz beeps, whose harmonics fall in this band */
    sa_pulse_t ring[SA_BEEP_RING];
    uint8_t count;
    bool pending;
    sa_pulse_t cand[3];
    uint32_t deadline;
    bool has_reported;
    sa_pulse_t reported[3]; /* the beeps of the latest reported cycle */
    sa_cycles_t cycles;
} sa_beeps_t;

typedef struct {
    const sa_chirp_timing_t *timing;
    sa_pulse_t ring[SA_CHIRP_RING];
    uint8_t count;
    bool pending;
    sa_pulse_t cand[4];
    uint32_t deadline;
    sa_cycles_t cycles;
} sa_chirps_t;

typedef struct {
    bool partials; /* tonal by the share with partials (smoke/CO tone) or alone (520 Hz) */
    bool has_chirps;
    int32_t floor_cdb;
    int32_t history[2]; /* the tone's level one and two frames ago */
    sa_onset_t onsets[SA_MAX_ONSETS];
    uint8_t n_onsets;
    sa_beeps_t beeps;
    sa_chirps_t chirps;
    /* The level peak (chirp) being followed. */
    bool rising;
    int32_t peak_cdb, peak_snr, valley_cdb, last_level, steepest;
    uint32_t rise_at;
    sa_tone_id_t peak_tone;
} sa_track_t;

typedef struct {
    uint32_t frame;
    sa_track_t high, low;
} sa_patterns_t;

extern const sa_beep_timing_t sa_t3_timing, sa_lf520_timing;
extern const sa_chirp_timing_t sa_t4_timing;

const char *sa_detector_name(sa_detector_t kind);
void sa_patterns_init(sa_patterns_t *p);
/* Feed one frame's features; writes up to SA_MAX_DETECTIONS_PER_FRAME detections to out and
 * returns how many. */
int sa_patterns_step(sa_patterns_t *p, const sa_features_t *f, sa_detection_t *out);

#endif
