/* The pattern detectors of the RP2040 core, compiled to WebAssembly for the phone agent page
 * (services/web/static/agent/core.js): the same fixed-point code as the board, not a port.
 *
 * No libc: clang --target=wasm32 -nostdlib -mbulk-memory turns the core's memset/memcpy into
 * memory.fill/memory.copy instructions. One detector per instance. The caller writes int16
 * samples into the buffer at sa_wasm_input() and calls sa_wasm_push(n); detections confirmed
 * by those samples are then at sa_wasm_output(), SA_WASM_FIELDS int32 each:
 *   kind (0 t3, 1 t4, 2 lf520), confidence (per mille), onset sample, confirming sample,
 *   tone (Hz), cycle.
 * Sample positions count from the first sample pushed after sa_wasm_reset(): the confirming
 * sample is the end of the frame that confirmed it, as the board's uptime_ms is. */
#include <stddef.h>
#include <stdint.h>

#include "sa_config.h"
#include "sa_dsp.h"
#include "sa_pattern.h"

#define SA_WASM_INPUT 4096
#define SA_WASM_FIELDS 6
/* A frame confirms at most SA_MAX_DETECTIONS_PER_FRAME; 4096 samples are 16 frames. */
#define SA_WASM_MAX_OUT ((SA_WASM_INPUT / SA_FRAME_SAMPLES + 1) * SA_MAX_DETECTIONS_PER_FRAME)

#define EXPORT(name) __attribute__((export_name(#name)))

static sa_dsp_t dsp;
static sa_patterns_t patterns;
static sa_features_t features;
static int16_t frame[SA_FRAME_SAMPLES];
static uint32_t fill;
static uint32_t frames;
static int16_t input[SA_WASM_INPUT];
static int32_t output[SA_WASM_MAX_OUT * SA_WASM_FIELDS];
static uint32_t found;

EXPORT(sa_wasm_reset) void sa_wasm_reset(void);
EXPORT(sa_wasm_input) int16_t *sa_wasm_input(void);
EXPORT(sa_wasm_input_capacity) uint32_t sa_wasm_input_capacity(void);
EXPORT(sa_wasm_output) int32_t *sa_wasm_output(void);
EXPORT(sa_wasm_fields) uint32_t sa_wasm_fields(void);
EXPORT(sa_wasm_frame_samples) uint32_t sa_wasm_frame_samples(void);
EXPORT(sa_wasm_push) uint32_t sa_wasm_push(uint32_t n);

void sa_wasm_reset(void)
{
    sa_dsp_init(&dsp);
    sa_patterns_init(&patterns);
    fill = 0;
    frames = 0;
    found = 0;
}

int16_t *sa_wasm_input(void) { return input; }
uint32_t sa_wasm_input_capacity(void) { return SA_WASM_INPUT; }
int32_t *sa_wasm_output(void) { return output; }
uint32_t sa_wasm_fields(void) { return SA_WASM_FIELDS; }
uint32_t sa_wasm_frame_samples(void) { return SA_FRAME_SAMPLES; }

static void analyse(void)
{
    sa_detection_t d[SA_MAX_DETECTIONS_PER_FRAME];
    sa_dsp_frame(&dsp, frame, &features);
    int n = sa_patterns_step(&patterns, &features, d);
    frames++;
    for (int i = 0; i < n && found < SA_WASM_MAX_OUT; i++) {
        int32_t *row = &output[found * SA_WASM_FIELDS];
        row[0] = (int32_t)d[i].kind;
        row[1] = (int32_t)d[i].confidence_pm;
        row[2] = (int32_t)(d[i].onset_frame * SA_FRAME_SAMPLES);
        row[3] = (int32_t)(frames * SA_FRAME_SAMPLES);
        row[4] = (int32_t)d[i].tone_hz;
        row[5] = (int32_t)d[i].cycle;
        found++;
    }
}

/* Returns how many detections the n samples at sa_wasm_input() confirmed (n is clamped to
 * the input capacity). */
uint32_t sa_wasm_push(uint32_t n)
{
    found = 0;
    if (n > SA_WASM_INPUT) {
        n = SA_WASM_INPUT;
    }
    for (uint32_t i = 0; i < n; i++) {
        frame[fill++] = input[i];
        if (fill == SA_FRAME_SAMPLES) {
            analyse();
            fill = 0;
        }
    }
    return found;
}
