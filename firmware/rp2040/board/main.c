/* soundalert RP2040 firmware: PDM mic -> portable core -> $SA1 lines over USB CDC. */
#include <stdio.h>

#include "pdm_mic.h"
#include "pico/stdlib.h"
#include "pico/unique_id.h"
#include "sa_core.h"
#ifdef SA_WITH_TFLM
#include "classifier.h"
#endif

#ifndef SA_MIC_CLOCK_PIN
#define SA_MIC_CLOCK_PIN 3
#endif
#ifndef SA_MIC_DATA_PIN
#define SA_MIC_DATA_PIN 2
#endif

static sa_core_t core;
static int16_t pcm[PDM_BLOCK_SAMPLES];
static char board_id[2 * PICO_UNIQUE_BOARD_ID_SIZE_BYTES + 8];

/* Lines are written whole; if the host is not reading, USB CDC drops them (counted by the
 * host through sequence-number gaps). */
static void usb_sink(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    fwrite(line, 1, len, stdout);
    fflush(stdout);
}

int main(void)
{
    stdio_init_all();
    snprintf(board_id, sizeof board_id, "rp2040-");
    pico_get_unique_board_id_string(board_id + 7, sizeof board_id - 7);

    sa_core_config_t cfg = {
        .board_id = board_id,
        .fw_version = SA_FW_VERSION,
        .level_every = 62, /* ~1 s */
        .heartbeat_ms = 1000,
        .clock_offset_ms = to_ms_since_boot(get_absolute_time()),
        .sink = usb_sink,
        .sink_ctx = NULL,
    };
    sa_core_init(&core, &cfg);
    pdm_mic_config_t mic = {SA_MIC_CLOCK_PIN, SA_MIC_DATA_PIN};
    if (!pdm_mic_start(&mic)) {
        for (;;) {
            char line[SA_PROTO_MAX_LINE];
            size_t n = sa_proto_error(&core.proto, line, sa_core_uptime_ms(&core), SA_ERR_MIC, 1);
            usb_sink(NULL, line, n);
            sleep_ms(1000);
        }
    }
#ifdef SA_WITH_TFLM
    bool classifier = sa_classifier_init();
#endif
    for (;;) {
        if (!pdm_mic_read(pcm)) {
            __wfi(); /* sleep until the next DMA interrupt */
            continue;
        }
        uint32_t lost = pdm_mic_take_overruns();
        if (lost != 0) {
            sa_core_overrun(&core, lost);
        }
        sa_core_push(&core, pcm, PDM_BLOCK_SAMPLES);
#ifdef SA_WITH_TFLM
        uint16_t score;
        if (classifier) {
            (void)sa_classifier_step(&core.features, &score);
        }
#endif
    }
}
