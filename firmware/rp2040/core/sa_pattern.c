#include "sa_pattern.h"

#include <string.h>

const sa_timing_t sa_t3_timing = {SA_DET_T3, 3, 22, 44, 500, 19, 44, 500, 69, 156, 0};
const sa_timing_t sa_t4_timing = {SA_DET_T4, 4, 3, 12, 100, 3, 12, 100, 188, 500, 125};
const sa_timing_t sa_lf520_timing = {SA_DET_LF520, 3, 22, 44, 500, 19, 44, 500, 69, 156, 0};

const char *sa_detector_name(sa_detector_t kind)
{
    switch (kind) {
    case SA_DET_T3:
        return "t3";
    case SA_DET_T4:
        return "t4";
    case SA_DET_LF520:
        return "lf520";
    }
    return "unknown";
}

static void track_init(sa_track_t *t, const sa_timing_t *a, const sa_timing_t *b)
{
    memset(t, 0, sizeof *t);
    t->matcher[0].timing = a;
    t->n_matchers = 1;
    if (b != NULL) {
        t->matcher[1].timing = b;
        t->n_matchers = 2;
    }
    for (int i = 0; i < t->n_matchers; i++) {
        t->matcher[i].checked = true;
    }
}

void sa_patterns_init(sa_patterns_t *p)
{
    memset(p, 0, sizeof *p);
    p->high_gate.min_ratio_pm = SA_HIGH_RATIO_PM;
    p->low_gate.min_ratio_pm = SA_LOW_RATIO_PM;
    p->high_gate.ref_cdb = SA_ON_MIN_CDB;
    p->low_gate.ref_cdb = SA_ON_MIN_CDB;
    track_init(&p->high, &sa_t3_timing, &sa_t4_timing);
    track_init(&p->low, &sa_lf520_timing, NULL);
}

/* Whether the tone is on in this frame; *snr is its height above the band's noise floor. */
static bool gate_step(sa_gate_t *g, const sa_tone_t *tone, int32_t floor_cdb, int32_t *snr)
{
    *snr = tone->cdb - floor_cdb;
    bool candidate = tone->cdb >= SA_ON_MIN_CDB && *snr >= SA_ON_MARGIN_CDB &&
                     tone->ratio_pm >= g->min_ratio_pm;
    bool on = candidate && tone->cdb >= g->ref_cdb - SA_REL_CDB;
    g->ref_cdb -= SA_REF_DECAY_CDB;
    if (g->ref_cdb < SA_ON_MIN_CDB) {
        g->ref_cdb = SA_ON_MIN_CDB;
    }
    if (candidate && tone->cdb > g->ref_cdb) {
        g->ref_cdb = tone->cdb;
    }
    return on;
}

/* Timing error in per mille of half the nominal duration, capped at 1000. */
static int32_t error_pm(uint32_t frames, uint32_t nominal_ms)
{
    int32_t diff = (int32_t)(frames * SA_FRAME_MS) - (int32_t)nominal_ms;
    if (diff < 0) {
        diff = -diff;
    }
    int32_t e = diff * 2000 / (int32_t)nominal_ms;
    return e > 1000 ? 1000 : e;
}

static bool within(uint32_t v, uint32_t lo, uint32_t hi)
{
    return v >= lo && v <= hi;
}

static uint32_t bin_distance(uint8_t a, uint8_t b)
{
    return a > b ? (uint32_t)(a - b) : (uint32_t)(b - a);
}

static bool match(sa_matcher_t *m, uint32_t frame, sa_detection_t *out)
{
    const sa_timing_t *p = m->timing;
    if (m->count < p->pulses) {
        return false;
    }
    const sa_pulse_t *pulses = &m->ring[m->count - p->pulses];
    const sa_pulse_t *first = &pulses[0];
    uint8_t lo = first->bin;
    uint8_t hi = first->bin;
    for (int i = 1; i < p->pulses; i++) {
        lo = pulses[i].bin < lo ? pulses[i].bin : lo;
        hi = pulses[i].bin > hi ? pulses[i].bin : hi;
    }
    if (hi - lo > SA_MAX_BIN_SPREAD) {
        return false;
    }
    if (first->has_gap && first->gap_before < p->quiet_before) {
        return false; /* T4 follows ~5 s of silence; four beeps every second is an alarm clock */
    }
    if (m->count > p->pulses && first->has_gap && within(first->gap_before, p->gap_min, p->gap_max) &&
        bin_distance(pulses[-1].bin, first->bin) <= SA_MAX_BIN_SPREAD) {
        return false; /* the rhythm started earlier: a longer beep train, not this pattern */
    }
    int32_t error_sum = 0;
    int32_t n_errors = 0;
    int32_t snr_sum = 0;
    for (int i = 0; i < p->pulses; i++) {
        const sa_pulse_t *q = &pulses[i];
        error_sum += error_pm(q->end - q->start, p->on_nominal_ms);
        n_errors++;
        snr_sum += q->snr_cdb;
        if (i > 0) {
            if (!q->has_gap || !within(q->gap_before, p->gap_min, p->gap_max)) {
                return false;
            }
            error_sum += error_pm(q->gap_before, p->gap_nominal_ms);
            n_errors++;
        }
    }
    int32_t timing_pm = 1000 - error_sum / n_errors;
    int32_t snr = snr_sum / p->pulses;
    int32_t strength_pm = (snr - SA_ON_MARGIN_CDB) * 1000 / (SA_SNR_FULL_CDB - SA_ON_MARGIN_CDB);
    strength_pm = strength_pm < 0 ? 0 : (strength_pm > 1000 ? 1000 : strength_pm);
    uint16_t cycle = 1;
    if (m->has_last && first->start - m->last_end <= p->cycle_gap_max) {
        cycle = (uint16_t)(m->last_cycle + 1);
    }
    m->has_last = true;
    m->last_end = pulses[p->pulses - 1].end;
    m->last_cycle = cycle;
    int32_t conf = 400 + (300 * timing_pm + 300 * strength_pm) / 1000 + 100 * (cycle - 1);
    out->kind = p->kind;
    out->confidence_pm = (uint16_t)(conf > 1000 ? 1000 : conf);
    out->onset_frame = first->start;
    out->confirm_frame = frame;
    out->tone_hz = (uint16_t)(first->bin * 125u / 2u);
    out->cycle = cycle;
    return true;
}

static void finalise(sa_track_t *t)
{
    uint32_t start = t->open_start;
    uint32_t end = t->last_on + 1;
    t->open = false;
    if (end - start < SA_MIN_PULSE) {
        return;
    }
    int32_t snr = t->snr_sum / t->snr_frames;
    for (int i = 0; i < t->n_matchers; i++) {
        sa_matcher_t *m = &t->matcher[i];
        if (!within(end - start, m->timing->on_min, m->timing->on_max)) {
            continue;
        }
        if (m->count == SA_RING) {
            memmove(&m->ring[0], &m->ring[1], (SA_RING - 1) * sizeof m->ring[0]);
            m->count--;
        }
        sa_pulse_t *q = &m->ring[m->count++];
        q->start = start;
        q->end = end;
        q->bin = t->open_bin;
        q->snr_cdb = snr;
        q->has_gap = m->has_prev;
        q->gap_before = m->has_prev ? start - m->prev_end : 0;
        m->has_prev = true;
        m->prev_end = end;
        m->checked = false;
    }
}

static int track_step(sa_track_t *t, uint32_t frame, bool on, uint8_t bin, int32_t snr,
                      sa_detection_t *out)
{
    int found = 0;
    if (on) {
        if (!t->open) {
            t->open = true;
            t->open_start = frame;
            t->open_bin = bin;
            t->snr_sum = 0;
            t->snr_frames = 0;
        }
        t->last_on = frame;
        if (t->snr_frames < SA_SNR_FRAMES_MAX) {
            t->snr_sum += snr;
            t->snr_frames++;
        }
    } else if (t->open && frame - t->last_on > SA_MERGE_GAP) {
        finalise(t);
    }
    for (int i = 0; i < t->n_matchers; i++) {
        sa_matcher_t *m = &t->matcher[i];
        if (m->checked || !m->has_prev || frame + 1 - m->prev_end < m->timing->long_gap) {
            continue;
        }
        if (t->open && t->open_start - m->prev_end < m->timing->long_gap) {
            continue; /* a pulse inside the long gap is still open: wait for its length */
        }
        m->checked = true;
        if (match(m, frame, &out[found])) {
            found++;
        }
    }
    return found;
}

int sa_patterns_step(sa_patterns_t *p, const sa_features_t *f, sa_detection_t *out)
{
    int32_t snr;
    int found = 0;
    bool on = gate_step(&p->high_gate, &f->high, f->floor_cdb[SA_HIGH_BAND], &snr);
    found += track_step(&p->high, p->frame, on, f->high.bin, snr, &out[found]);
    on = gate_step(&p->low_gate, &f->low, f->floor_cdb[SA_LOW_BAND], &snr);
    found += track_step(&p->low, p->frame, on, f->low.bin, snr, &out[found]);
    p->frame++;
    return found;
}
