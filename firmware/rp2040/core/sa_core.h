/* The portable pipeline: samples -> frames -> features -> detectors -> protocol lines.
 * Knows nothing of the board: the caller pushes 16 kHz int16 samples and receives complete
 * protocol lines through a sink callback. The clock is the sample clock: uptime_ms is
 * clock_offset_ms plus 16 ms per analysed frame. */
#ifndef SA_CORE_H
#define SA_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "sa_dsp.h"
#include "sa_pattern.h"
#include "sa_proto.h"

#define SA_FW_VERSION "0.1.0"

typedef void (*sa_sink_fn)(void *ctx, const char *line, size_t len);

typedef struct {
    const char *board_id;
    const char *fw_version;
    uint32_t level_every; /* send a LEVEL line every this many frames; 0 = never */
    uint32_t heartbeat_ms; /* send a HB line this often (sample clock); 0 = never */
    uint32_t clock_offset_ms;
    sa_sink_fn sink;
    void *sink_ctx;
} sa_core_config_t;

typedef struct {
    sa_core_config_t cfg;
    int16_t frame[SA_FRAME_SAMPLES];
    uint32_t fill;
    uint32_t frames;
    uint32_t overruns;
    uint32_t next_heartbeat_ms;
    sa_dsp_t dsp;
    sa_patterns_t patterns;
    sa_proto_t proto;
    sa_features_t features; /* of the latest frame */
    char line[SA_PROTO_MAX_LINE];
} sa_core_t;

/* Resets all state and sends the HELLO line. */
void sa_core_init(sa_core_t *core, const sa_core_config_t *cfg);
void sa_core_push(sa_core_t *core, const int16_t *samples, size_t n);
/* The board lost `blocks` blocks of samples: counted, and reported with an ERR line. */
void sa_core_overrun(sa_core_t *core, uint32_t blocks);
uint32_t sa_core_uptime_ms(const sa_core_t *core);

#endif
