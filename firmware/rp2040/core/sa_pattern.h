/* Deterministic NFPA 72 temporal-pattern detectors: T3 smoke, T4 CO, 520 Hz low-frequency T3.
 * The same algorithm, in floating point, is edge/dsp/patterns.py (see its docstring). */
#ifndef SA_PATTERN_H
#define SA_PATTERN_H

#include <stdbool.h>
#include <stdint.h>

#include "sa_dsp.h"

typedef enum { SA_DET_T3 = 0, SA_DET_T4 = 1, SA_DET_LF520 = 2 } sa_detector_t;

/* Timing of one pattern, in 16 ms frames. */
typedef struct {
    sa_detector_t kind;
    uint8_t pulses;
    uint16_t on_min, on_max, on_nominal_ms;
    uint16_t gap_min, gap_max, gap_nominal_ms;
    uint16_t long_gap;      /* silence after the last pulse that confirms the pattern */
    uint16_t cycle_gap_max; /* a pattern this soon after the last one is its next cycle */
    uint16_t quiet_before;  /* least gap before the first pulse (unless it is the first ever) */
} sa_timing_t;

typedef struct {
    sa_detector_t kind;
    uint16_t confidence_pm; /* 0..1000 */
    uint32_t onset_frame;   /* frame where the cycle's first pulse began */
    uint32_t confirm_frame; /* frame that confirmed it */
    uint16_t tone_hz;
    uint16_t cycle;         /* 1, 2, ... for back-to-back cycles of one alarm */
} sa_detection_t;

#define SA_MAX_PULSES 4
#define SA_RING (SA_MAX_PULSES + 1)
#define SA_MAX_DETECTIONS_PER_FRAME 3

typedef struct {
    uint32_t start, end;
    uint8_t bin;
    int32_t snr_cdb;
    bool has_gap;
    uint32_t gap_before;
} sa_pulse_t;

typedef struct {
    const sa_timing_t *timing;
    sa_pulse_t ring[SA_RING];
    uint8_t count; /* pulses held, at most SA_RING; ring[count-1] is the newest */
    bool has_prev;
    uint32_t prev_end;
    bool checked;
    bool has_last;
    uint32_t last_end;
    uint16_t last_cycle;
} sa_matcher_t;

typedef struct {
    bool started;
    int32_t ref_cdb;
    uint16_t min_ratio_pm;
} sa_gate_t;

typedef struct {
    sa_matcher_t matcher[2];
    uint8_t n_matchers;
    bool open;
    uint32_t open_start, last_on;
    uint8_t open_bin;
    int32_t snr_sum;
    int32_t snr_frames;
} sa_track_t;

typedef struct {
    uint32_t frame;
    sa_gate_t high_gate, low_gate;
    sa_track_t high, low;
} sa_patterns_t;

extern const sa_timing_t sa_t3_timing, sa_t4_timing, sa_lf520_timing;

const char *sa_detector_name(sa_detector_t kind);
void sa_patterns_init(sa_patterns_t *p);
/* Feed one frame's features; writes up to SA_MAX_DETECTIONS_PER_FRAME detections to out and
 * returns how many. */
int sa_patterns_step(sa_patterns_t *p, const sa_features_t *f, sa_detection_t *out);

#endif
