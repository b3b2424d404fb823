#include "sa_pattern.h"

#include <string.h>

/* Periods onset to onset: 0.5 s on + 0.5 s off, each +-10 % (0.9-1.1 s), plus up to 3 frames
 * of onset jitter at low SNR, within 5 frames of each other. T4: 0.1 + 0.1 s, each +-10 %,
 * plus what reverberation does to a chirp's rise; 2 s of quiet before, 3 s after (of its 5 s
 * pause). */
const sa_beep_timing_t sa_t3_timing = {SA_DET_T3, 52, 73, 1000, 5, 156};
const sa_beep_timing_t sa_lf520_timing = {SA_DET_LF520, 52, 73, 1000, 5, 156};
const sa_chirp_timing_t sa_t4_timing = {SA_DET_T4, 4, 10, 17, 200, 5, 125, 188, 375};

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

static uint32_t distance(uint32_t a, uint32_t b)
{
    return a > b ? a - b : b - a;
}

/* Whether two beeps sound one tone: a peak or partial of one near one of the other. */
static bool same_tone(sa_tone_id_t a, sa_tone_id_t b)
{
    const uint8_t x[2] = {a.bin, a.alt};
    const uint8_t y[2] = {b.bin, b.alt};
    uint32_t spread = a.spread < b.spread ? a.spread : b.spread;
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            if (x[i] > 0 && y[j] > 0 && distance(x[i], y[j]) <= spread) {
                return true;
            }
        }
    }
    return false;
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

/* Appends to a ring of `cap` pulses, dropping the oldest when full. */
static void ring_push(sa_pulse_t *ring, uint8_t *count, uint8_t cap, const sa_pulse_t *q)
{
    if (*count == cap) {
        memmove(&ring[0], &ring[1], (size_t)(cap - 1) * sizeof ring[0]);
        (*count)--;
    }
    ring[(*count)++] = *q;
}

/* The newest `n` pulses of the ring on `tone`, oldest first; returns how many there were. */
static int recent(const sa_pulse_t *ring, uint8_t count, sa_tone_id_t tone, int n,
                  sa_pulse_t *out)
{
    int found = 0;
    for (int i = count - 1; i >= 0 && found < n; i--) {
        if (same_tone(ring[i].tone, tone)) {
            found++;
            out[n - found] = ring[i];
        }
    }
    if (found < n) {
        memmove(&out[0], &out[n - found], (size_t)found * sizeof out[0]);
    }
    return found;
}

static bool periods_fit(const sa_pulse_t *q, int n, uint32_t lo, uint32_t hi, uint32_t spread,
                        uint32_t *min_out, uint32_t *max_out)
{
    uint32_t mn = UINT32_MAX;
    uint32_t mx = 0;
    for (int i = 1; i < n; i++) {
        uint32_t p = q[i].start - q[i - 1].start;
        if (p < lo || p > hi) {
            return false;
        }
        mn = p < mn ? p : mn;
        mx = p > mx ? p : mx;
    }
    *min_out = mn;
    *max_out = mx;
    return mx - mn <= spread;
}

/* Whether the pulses' times lie on a regular grid: the least-squares period within [lo, hi]
 * frames and every time within jitter_half / 2 frames of the fitted line. With x = i - (n-1)/2,
 * the period is sum(x t) / sum(x^2) = 6 w / (n (n^2 - 1)) for w = sum((2i - n + 1) t); all in
 * units of 1 / (n (n^2 - 1)) frames, exactly. */
static bool on_grid(const sa_pulse_t *q, int n, uint32_t lo, uint32_t hi, uint32_t jitter_half)
{
    int64_t scale = (int64_t)n * (n * n - 1); /* 60 for four chirps */
    int64_t w = 0;
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        int64_t t = (int64_t)(q[i].start - q[0].start);
        w += (2 * i - n + 1) * t;
        sum += t;
    }
    int64_t period = 6 * w; /* the period, times scale */
    if (period < (int64_t)lo * scale || period > (int64_t)hi * scale) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        int64_t t = (int64_t)(q[i].start - q[0].start);
        /* (t - mean - (i - (n-1)/2) period) * scale * 2n, kept integral */
        int64_t r = 2 * n * t * scale - 2 * sum * scale - (2 * i - n + 1) * n * period;
        if ((r < 0 ? -r : r) > (int64_t)jitter_half * n * scale) {
            return false;
        }
    }
    return true;
}

static uint16_t cycles_next(sa_cycles_t *c, uint32_t gap_max, uint32_t first_start,
                            uint32_t last_start)
{
    uint16_t cycle = 1;
    if (c->has_last && first_start - c->last_start <= gap_max) {
        cycle = (uint16_t)(c->last + 1);
    }
    c->has_last = true;
    c->last_start = last_start;
    c->last = cycle;
    return cycle;
}

static void detection(sa_detector_t kind, const sa_pulse_t *q, int n, uint32_t nominal_ms,
                      uint32_t frame, uint16_t cycle, sa_detection_t *out)
{
    int32_t errors = 0;
    int32_t snr = 0;
    for (int i = 0; i < n; i++) {
        snr += q[i].snr_cdb;
        if (i > 0) {
            errors += error_pm(q[i].start - q[i - 1].start, nominal_ms);
        }
    }
    int32_t timing_pm = 1000 - errors / (n - 1);
    snr /= n;
    int32_t strength_pm = (snr - SA_ON_MARGIN_CDB) * 1000 / (SA_SNR_FULL_CDB - SA_ON_MARGIN_CDB);
    strength_pm = strength_pm < 0 ? 0 : (strength_pm > 1000 ? 1000 : strength_pm);
    int32_t conf = 400 + (300 * timing_pm + 300 * strength_pm) / 1000 + 100 * (cycle - 1);
    out->kind = kind;
    out->confidence_pm = (uint16_t)(conf > 1000 ? 1000 : conf);
    out->onset_frame = q[0].start;
    out->confirm_frame = frame;
    out->tone_hz = (uint16_t)(q[0].tone.bin * 125u / 2u);
    out->cycle = cycle;
}

/* ---- beeps ---------------------------------------------------------------------------- */

/* Whether beep a is fuller than b: more tonal frames in its first 0.43 s, or as many and
 * SA_FULLER_CDB louder (two rises of one beep, alike, keep the first). */
static bool fuller(const sa_pulse_t *a, const sa_pulse_t *b)
{
    uint32_t wa = a->end - a->start;
    uint32_t wb = b->end - b->start;
    return wa != wb ? wa > wb : a->peak_cdb > b->peak_cdb + SA_FULLER_CDB;
}

/* Removes the newest ring entry on `tone` that starts at `start`. */
static void ring_remove(sa_pulse_t *ring, uint8_t *count, sa_tone_id_t tone, uint32_t start)
{
    for (int i = *count - 1; i >= 0; i--) {
        if (ring[i].start == start && same_tone(ring[i].tone, tone)) {
            memmove(&ring[i], &ring[i + 1], (size_t)(*count - 1 - i) * sizeof ring[0]);
            (*count)--;
            return;
        }
    }
}

static void beeps_closed(sa_beeps_t *m, const sa_pulse_t *pulse)
{
    const sa_beep_timing_t *t = m->timing;
    sa_pulse_t earlier[3];
    int n = recent(m->ring, m->count, pulse->tone, 3, earlier);
    if (n > 0 && pulse->start - earlier[n - 1].start < SA_REFRACTORY) {
        /* Two rises of one beep, or a beep and a sound just before it: keep the fuller. */
        if (!fuller(pulse, &earlier[n - 1])) {
            return;
        }
        for (int i = 0; m->pending && i < 3; i++) {
            if (m->cand[i].start == earlier[n - 1].start &&
                same_tone(m->cand[i].tone, earlier[n - 1].tone)) {
                m->pending = false; /* its last beep was the lesser of two: not a beep */
            }
        }
        ring_remove(m->ring, &m->count, pulse->tone, earlier[n - 1].start);
        n = recent(m->ring, m->count, pulse->tone, 3, earlier);
    }
    ring_push(m->ring, &m->count, SA_BEEP_RING, pulse);
    if (n < 2) {
        return;
    }
    sa_pulse_t beeps[3] = {earlier[n - 2], earlier[n - 1], *pulse};
    uint32_t mn;
    uint32_t mx;
    if (!periods_fit(beeps, 3, t->period_min, t->period_max, t->period_spread, &mn, &mx)) {
        return;
    }
    if (n == 3) {
        uint32_t before = beeps[0].start - earlier[0].start;
        if (before >= t->period_min && before <= t->period_max) {
            return; /* the rhythm started earlier: a longer beep train, not this pattern */
        }
    }
    memcpy(m->cand, beeps, sizeof beeps);
    m->deadline = pulse->start + mx + SA_BEEP_WAIT;
    m->pending = true;
}

/* Whether two beep triples start together (within SA_HARMONIC_SLACK frames each). */
static bool coincide(const sa_pulse_t *a, const sa_pulse_t *b)
{
    for (int i = 0; i < 3; i++) {
        if (distance(a[i].start, b[i].start) > SA_HARMONIC_SLACK) {
            return false;
        }
    }
    return true;
}

static bool beeps_step(sa_beeps_t *m, uint32_t frame, const sa_onset_t *onsets, int n_onsets,
                       const sa_features_t *f, sa_detection_t *out)
{
    if (!m->pending) {
        return false;
    }
    const sa_beep_timing_t *t = m->timing;
    const sa_pulse_t *last = &m->cand[2];
    uint32_t p1 = m->cand[1].start - m->cand[0].start;
    uint32_t p2 = last->start - m->cand[1].start;
    uint32_t soonest = last->start + (p1 < p2 ? p1 : p2) - t->period_spread;
    if (soonest <= frame) {
        int32_t quietest = m->cand[0].peak_cdb;
        for (int i = 1; i < 3; i++) {
            quietest = m->cand[i].peak_cdb < quietest ? m->cand[i].peak_cdb : quietest;
        }
        if (sa_features_tri_cdb(f, last->tone.bin) >= quietest - SA_TRAIN_CDB) {
            /* The beeps' bins sound again where a fourth beep would: tonal or not (clipped, or
             * through a phone's gain control, a beep's first frames may not be), it is not the
             * pause a T3 cycle needs. */
            m->pending = false;
            return false;
        }
    }
    for (int i = 0; i < n_onsets; i++) {
        const sa_onset_t *o = &onsets[i];
        if (o->start >= soonest && o->start < m->deadline && same_tone(o->tone, last->tone)) {
            if (o->on_frames >= SA_MIN_PULSE) {
                m->pending = false; /* a fourth beep: a beep train */
                return false;
            }
            if (frame - o->start < SA_MIN_PULSE) {
                return false; /* wait: it may become one */
            }
        }
    }
    if (frame + 1 < m->deadline) {
        return false;
    }
    const sa_beeps_t *shadow = m->shadow;
    if (shadow != NULL) {
        /* A 520 Hz square wave's harmonics also beep here: that alarm is reported as lf520,
         * once. Wait for the 520 Hz beeps' own verdict; report T3 only if they have none. */
        if (shadow->pending && coincide(shadow->cand, m->cand)) {
            return false;
        }
        if (shadow->has_reported && coincide(shadow->reported, m->cand)) {
            m->pending = false;
            return false;
        }
    }
    m->pending = false;
    uint16_t cycle = cycles_next(&m->cycles, t->cycle_gap_max, m->cand[0].start, last->start);
    memcpy(m->reported, m->cand, sizeof m->reported);
    m->has_reported = true;
    detection(t->kind, m->cand, 3, t->period_nominal_ms, frame, cycle, out);
    return true;
}

/* ---- chirps --------------------------------------------------------------------------- */

/* Whether a peak on the chirps' tone is loud enough to be a sound like theirs: within
 * SA_QUIET_CDB of the quietest of them (not a reverberant tail's ripple). */
static bool loud(const sa_pulse_t *peak, const sa_pulse_t *chirps, int n)
{
    int32_t quietest = chirps[0].peak_cdb;
    for (int i = 1; i < n; i++) {
        quietest = chirps[i].peak_cdb < quietest ? chirps[i].peak_cdb : quietest;
    }
    return same_tone(peak->tone, chirps[0].tone) && peak->peak_cdb >= quietest - SA_QUIET_CDB;
}

static void chirps_peak(sa_chirps_t *m, const sa_pulse_t *peak)
{
    const sa_chirp_timing_t *t = m->timing;
    int k = t->chirps;
    sa_pulse_t merged = *peak;
    const sa_pulse_t *chirp = peak;
    if (m->count > 0 && same_tone(m->ring[m->count - 1].tone, peak->tone) &&
        peak->start - m->ring[m->count - 1].start < SA_CHIRP_MERGE) {
        /* One chirp, split by a notch of the room's interference: one peak. */
        const sa_pulse_t *last = &m->ring[m->count - 1];
        const sa_pulse_t *louder = peak->peak_cdb > last->peak_cdb ? peak : last;
        merged.start = last->start;
        merged.end = peak->end;
        merged.tone = louder->tone;
        merged.snr_cdb = louder->snr_cdb;
        merged.peak_cdb = louder->peak_cdb;
        m->count--;
        chirp = &merged;
    }
    if (m->pending && chirp->start >= m->cand[k - 1].end + SA_TAIL && loud(chirp, m->cand, k)) {
        m->pending = false; /* no pause after the four chirps */
    }
    sa_pulse_t chirps[4];
    int n = recent(m->ring, m->count, chirp->tone, k - 1, chirps);
    ring_push(m->ring, &m->count, SA_CHIRP_RING, chirp);
    if (n < k - 1) {
        return;
    }
    chirps[k - 1] = *chirp;
    for (int i = 0; i < k; i++) {
        uint32_t width = chirps[i].end - chirps[i].start;
        if (width < SA_CHIRP_MIN_WIDTH || width > SA_CHIRP_MAX_WIDTH) {
            return;
        }
    }
    if (!on_grid(chirps, k, t->period_min, t->period_max, t->jitter_half_frames)) {
        return;
    }
    int lowest_bin = chirps[0].tone.bin;
    int highest_bin = chirps[0].tone.bin;
    for (int i = 1; i < k; i++) {
        lowest_bin = chirps[i].tone.bin < lowest_bin ? chirps[i].tone.bin : lowest_bin;
        highest_bin = chirps[i].tone.bin > highest_bin ? chirps[i].tone.bin : highest_bin;
    }
    if (highest_bin - lowest_bin > SA_MAX_BIN_SPREAD) {
        return; /* one piezo sounds one pitch; speech's formants wander from peak to peak */
    }
    int32_t lowest = chirps[0].peak_cdb;
    int32_t highest = chirps[0].peak_cdb;
    for (int i = 1; i < k; i++) {
        lowest = chirps[i].peak_cdb < lowest ? chirps[i].peak_cdb : lowest;
        highest = chirps[i].peak_cdb > highest ? chirps[i].peak_cdb : highest;
    }
    if (highest - lowest > SA_CHIRP_LEVEL_SPREAD_CDB) {
        return; /* one sounder's chirps, not a knock's decaying echoes or a crash's shards */
    }
    uint32_t first = chirps[0].start;
    for (int i = 0; i < m->count; i++) {
        const sa_pulse_t *q = &m->ring[i];
        if (q->start < first && q->start + t->quiet_before > first && loud(q, chirps, k)) {
            return;
        }
    }
    memcpy(m->cand, chirps, sizeof chirps);
    m->deadline = chirp->start + t->quiet_after;
    m->pending = true;
}

static bool chirps_step(sa_chirps_t *m, uint32_t frame, const sa_pulse_t *rising,
                        sa_detection_t *out)
{
    const sa_chirp_timing_t *t = m->timing;
    if (!m->pending || frame + 1 < m->deadline) {
        return false;
    }
    if (rising != NULL && loud(rising, m->cand, t->chirps)) {
        return false; /* a peak on the tone is still rising: wait for it */
    }
    m->pending = false;
    uint16_t cycle = cycles_next(&m->cycles, t->cycle_gap_max, m->cand[0].start,
                                 m->cand[t->chirps - 1].start);
    detection(t->kind, m->cand, t->chirps, t->period_nominal_ms, frame, cycle, out);
    return true;
}

/* ---- one tone --------------------------------------------------------------------------- */

static void track_init(sa_track_t *t, const sa_beep_timing_t *beeps, bool chirps)
{
    memset(t, 0, sizeof *t);
    t->partials = chirps;
    t->has_chirps = chirps;
    t->floor_cdb = SA_ON_MIN_CDB;
    t->history[0] = SA_FLOOR_CDB;
    t->history[1] = SA_FLOOR_CDB;
    t->beeps.timing = beeps;
    t->chirps.timing = &sa_t4_timing;
    t->peak_cdb = SA_FLOOR_CDB;
    t->valley_cdb = SA_FLOOR_CDB;
    t->last_level = SA_FLOOR_CDB;
}

void sa_patterns_init(sa_patterns_t *p)
{
    memset(p, 0, sizeof *p);
    track_init(&p->high, &sa_t3_timing, true);
    track_init(&p->low, &sa_lf520_timing, false);
    p->high.beeps.shadow = &p->low.beeps;
}

static void watch_onsets(sa_track_t *t, uint32_t frame, bool tonal, sa_tone_id_t tone,
                         int32_t snr, const sa_features_t *f)
{
    int kept = 0;
    for (int i = 0; i < t->n_onsets; i++) {
        sa_onset_t *o = &t->onsets[i];
        uint32_t k = frame - o->start;
        int32_t level = sa_features_tri_cdb(f, o->tone.bin);
        bool done = false;
        if (k < SA_ON_WINDOW) {
            if (tonal && same_tone(tone, o->tone)) {
                o->on_frames++;
                o->late_frames += k >= SA_LATE_START ? 1 : 0;
                o->snr_sum += snr;
                o->peak_cdb = level > o->peak_cdb ? level : o->peak_cdb;
            }
        } else if (k >= SA_OFF_START) {
            o->off_cdb = level > o->off_cdb ? level : o->off_cdb;
            if (k == SA_OFF_END - 1) {
                done = true;
                if (o->on_frames >= SA_ON_FRAMES && o->late_frames >= SA_LATE_FRAMES &&
                    o->peak_cdb - o->off_cdb >= SA_OFF_CDB) {
                    sa_pulse_t beep = {o->start, o->start + o->on_frames, o->tone,
                                       o->snr_sum / o->on_frames, o->peak_cdb};
                    beeps_closed(&t->beeps, &beep);
                }
            }
        }
        if (!done) {
            t->onsets[kept++] = *o;
        }
    }
    t->n_onsets = (uint8_t)kept;
}

static bool new_onset(const sa_track_t *t, uint32_t frame, sa_tone_id_t tone)
{
    if (t->n_onsets >= SA_MAX_ONSETS) {
        return false;
    }
    for (int i = 0; i < t->n_onsets; i++) {
        if (same_tone(t->onsets[i].tone, tone) && frame - t->onsets[i].start < SA_ATTACK) {
            return false;
        }
    }
    return true;
}

static bool chirp_step(sa_track_t *t, uint32_t frame, int32_t level, sa_tone_id_t tone,
                       int32_t snr, sa_detection_t *out)
{
    if (t->rising) {
        if (level > t->peak_cdb) {
            if (level > t->peak_cdb + SA_FLAT_CDB) {
                t->peak_tone = tone;
            }
            t->peak_cdb = level;
            t->peak_snr = snr;
        } else if (level <= t->peak_cdb - SA_DIP_CDB) {
            sa_pulse_t chirp = {t->rise_at, frame, t->peak_tone, t->peak_snr, t->peak_cdb};
            chirps_peak(&t->chirps, &chirp);
            t->rising = false;
            t->valley_cdb = level;
            t->steepest = 0;
            t->rise_at = frame;
        }
    } else {
        int32_t step = level - t->last_level;
        if (level < t->valley_cdb) {
            t->valley_cdb = level;
            t->steepest = 0;
            t->rise_at = frame;
        } else if (step > t->steepest) {
            t->steepest = step;
            t->rise_at = frame;
        }
        if (level > SA_FLOOR_CDB && level >= t->valley_cdb + SA_DIP_CDB) {
            t->rising = true;
            t->peak_cdb = level;
            t->peak_tone = tone;
            t->peak_snr = snr;
        }
    }
    t->last_level = level;
    sa_pulse_t rising = {t->rise_at, frame, t->peak_tone, 0, t->peak_cdb};
    return chirps_step(&t->chirps, frame, t->rising ? &rising : NULL, out);
}

static int track_step(sa_track_t *t, uint32_t frame, const sa_tone_t *m, const sa_features_t *f,
                      sa_detection_t *out)
{
    int32_t snr = m->cdb - t->floor_cdb;
    uint16_t ratio = t->partials ? m->ratio_pm : m->main_pm;
    uint16_t ratio_min = t->partials ? SA_HIGH_RATIO_PM : SA_LOW_RATIO_PM;
    bool tonal = m->cdb >= SA_ON_MIN_CDB && snr >= SA_ON_MARGIN_CDB && ratio >= ratio_min;
    int32_t risen = t->floor_cdb + SA_FLOOR_RISE_CDB;
    t->floor_cdb = m->search_cdb < risen ? m->search_cdb : risen;
    int32_t rise = m->cdb - t->history[1];
    t->history[1] = t->history[0];
    t->history[0] = m->cdb;
    sa_tone_id_t tone = {m->bin, m->alt, t->partials ? SA_MAX_BIN_SPREAD : SA_LOW_BIN_SPREAD};

    watch_onsets(t, frame, tonal, tone, snr, f);
    if (tonal && rise >= SA_ONSET_CDB && new_onset(t, frame, tone)) {
        sa_onset_t *o = &t->onsets[t->n_onsets++];
        o->start = frame;
        o->tone = tone;
        o->peak_cdb = m->cdb;
        o->off_cdb = SA_FLOOR_CDB;
        o->snr_sum = snr;
        o->on_frames = 1;
        o->late_frames = 0;
    }
    int found = 0;
    if (beeps_step(&t->beeps, frame, t->onsets, t->n_onsets, f, &out[found])) {
        found++;
    }
    if (t->has_chirps &&
        chirp_step(t, frame, tonal ? m->search_cdb : SA_FLOOR_CDB, tone, snr, &out[found])) {
        found++;
    }
    return found;
}

int sa_patterns_step(sa_patterns_t *p, const sa_features_t *f, sa_detection_t *out)
{
    int found = track_step(&p->high, p->frame, &f->high, f, out);
    found += track_step(&p->low, p->frame, &f->low, f, &out[found]);
    p->frame++;
    return found;
}
