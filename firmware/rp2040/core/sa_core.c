#include "sa_core.h"

#include <string.h>

static void emit(sa_core_t *core, size_t len)
{
    if (len > 0 && core->cfg.sink != NULL) {
        core->cfg.sink(core->cfg.sink_ctx, core->line, len);
    }
}

uint32_t sa_core_uptime_ms(const sa_core_t *core)
{
    return core->cfg.clock_offset_ms + core->frames * SA_FRAME_MS;
}

void sa_core_init(sa_core_t *core, const sa_core_config_t *cfg)
{
    memset(core, 0, sizeof *core);
    core->cfg = *cfg;
    if (core->cfg.board_id == NULL) {
        core->cfg.board_id = "unknown";
    }
    if (core->cfg.fw_version == NULL) {
        core->cfg.fw_version = SA_FW_VERSION;
    }
    sa_dsp_init(&core->dsp);
    sa_patterns_init(&core->patterns);
    sa_proto_init(&core->proto);
    core->next_heartbeat_ms = core->cfg.clock_offset_ms + core->cfg.heartbeat_ms;
    emit(core, sa_proto_hello(&core->proto, core->line, core->cfg.clock_offset_ms,
                              core->cfg.board_id, core->cfg.fw_version));
}

static void analyse(sa_core_t *core)
{
    sa_detection_t found[SA_MAX_DETECTIONS_PER_FRAME];
    sa_dsp_frame(&core->dsp, core->frame, &core->features);
    int n = sa_patterns_step(&core->patterns, &core->features, found);
    core->frames++;
    uint32_t now = sa_core_uptime_ms(core);
    for (int i = 0; i < n; i++) {
        uint32_t onset = core->cfg.clock_offset_ms + found[i].onset_frame * SA_FRAME_MS;
        emit(core, sa_proto_detection(&core->proto, core->line, now,
                                      sa_detector_name(found[i].kind), found[i].confidence_pm,
                                      onset, found[i].tone_hz, found[i].cycle));
    }
    if (core->cfg.level_every != 0 && core->frames % core->cfg.level_every == 0) {
        emit(core, sa_proto_level(&core->proto, core->line, now, core->features.level_cdb,
                                  core->features.band_cdb));
    }
    /* Signed difference: correct across the 49.7-day wrap of the millisecond clock. */
    if (core->cfg.heartbeat_ms != 0 && (int32_t)(now - core->next_heartbeat_ms) >= 0) {
        emit(core, sa_proto_heartbeat(&core->proto, core->line, now, core->frames,
                                      core->overruns));
        core->next_heartbeat_ms += core->cfg.heartbeat_ms;
    }
}

void sa_core_push(sa_core_t *core, const int16_t *samples, size_t n)
{
    while (n > 0) {
        size_t take = SA_FRAME_SAMPLES - core->fill;
        if (take > n) {
            take = n;
        }
        memcpy(&core->frame[core->fill], samples, take * sizeof samples[0]);
        core->fill += (uint32_t)take;
        samples += take;
        n -= take;
        if (core->fill == SA_FRAME_SAMPLES) {
            analyse(core);
            core->fill = 0;
        }
    }
}

void sa_core_overrun(sa_core_t *core, uint32_t blocks)
{
    core->overruns += blocks;
    emit(core, sa_proto_error(&core->proto, core->line, sa_core_uptime_ms(core), SA_ERR_OVERRUN,
                              blocks));
}
