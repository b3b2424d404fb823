/* soundalert RP2040 firmware: PDM mic -> portable core -> $SA1 lines over USB CDC.
 *
 * Boot: count a watchdog reset (kept in a watchdog scratch register), start USB, then wait
 * until the host opens the port (DTR) so that the HELLO, which carries the firmware version,
 * reaches the bridge. Then the microphone starts and every 10 ms block of PCM goes through
 * the core. The main loop feeds the watchdog once per block: if the audio path or the loop
 * stalls for SA_WATCHDOG_MS the chip resets, USB re-enumerates and the bridge sees a new
 * HELLO (a reboot), followed by ERR,internal,<watchdog resets since power-up>. */
#include <stdio.h>

#include "hardware/sync.h"
#include "hardware/watchdog.h"
#include "pdm_mic.h"
#include "pico/stdio.h"
#include "pico/stdio_usb.h"
#include "pico/stdlib.h"
#include "pico/unique_id.h"
#include "sa_core.h"
#include "tusb.h"
#ifdef SA_WITH_TFLM
#include "classifier.h"
#endif

#ifndef SA_BOARD_FW_VERSION
#define SA_BOARD_FW_VERSION SA_FW_VERSION
#endif
#ifndef SA_MIC_CLOCK_PIN
#define SA_MIC_CLOCK_PIN 3
#endif
#ifndef SA_MIC_DATA_PIN
#define SA_MIC_DATA_PIN 2
#endif
#define SA_WATCHDOG_MS 1000u     /* the loop feeds it every 10 ms block */
#define SA_WATCHDOG_SCRATCH 0    /* scratch 0-3 are free; the SDK uses 4-7 */
#define SA_HOST_SETTLE_MS 250u
#define SA_BLINK_LISTENING_US 500000u
#define SA_BLINK_WAITING_US 125000u

static sa_core_t core;
static int16_t pcm[PDM_BLOCK_SAMPLES];
static char board_id[2 * PICO_UNIQUE_BOARD_ID_SIZE_BYTES + 8];
static uint32_t tx_dropped;

/* A line goes out whole or not at all: if the host is not reading (port closed, or its
 * buffer full) it is dropped and counted, and the count is sent as ERR,tx once there is
 * room. Never waits: the audio path must not stall on a slow host. */
static bool usb_room_for(size_t len)
{
    return stdio_usb_connected() && tud_cdc_write_available() >= len;
}

static void usb_sink(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    if (!usb_room_for(len)) {
        tx_dropped++;
        return;
    }
    stdio_put_string(line, (int)len, false, false);
    stdio_flush();
}

static void report_dropped_lines(void)
{
    if (tx_dropped == 0 || !usb_room_for(SA_PROTO_MAX_LINE)) {
        return;
    }
    char line[SA_PROTO_MAX_LINE];
    uint32_t n = tx_dropped;
    tx_dropped = 0;
    usb_sink(NULL, line, sa_proto_error(&core.proto, line, sa_core_uptime_ms(&core), SA_ERR_TX,
                                        n));
}

#ifdef PICO_DEFAULT_LED_PIN
static void led_init(void)
{
    gpio_init(PICO_DEFAULT_LED_PIN);
    gpio_set_dir(PICO_DEFAULT_LED_PIN, GPIO_OUT);
}

/* Blinks with the given half period; steady on (half_period_us 0) means the mic failed. */
static void led_show(uint32_t half_period_us)
{
    bool on = half_period_us == 0 || (time_us_32() / half_period_us) % 2u == 0;
    gpio_put(PICO_DEFAULT_LED_PIN, on);
}
#else
static void led_init(void) {}
static void led_show(uint32_t half_period_us) { (void)half_period_us; }
#endif

/* Until the host opens the port (DTR): a HELLO sent before would be lost. Then a short wait,
 * because the host's serial library flushes its input just after opening (pyserial does). */
static void wait_for_host(void)
{
    uint32_t connected_ms = 0;
    while (connected_ms < SA_HOST_SETTLE_MS) {
        connected_ms = stdio_usb_connected() ? connected_ms + 10u : 0u;
        watchdog_update();
        led_show(SA_BLINK_WAITING_US);
        sleep_ms(10);
    }
}

int main(void)
{
    uint32_t watchdog_resets = 0;
    if (watchdog_enable_caused_reboot()) {
        watchdog_resets = watchdog_hw->scratch[SA_WATCHDOG_SCRATCH] + 1u;
    }
    watchdog_hw->scratch[SA_WATCHDOG_SCRATCH] = watchdog_resets;
    led_init();
    stdio_init_all();
    watchdog_enable(SA_WATCHDOG_MS, true);
    snprintf(board_id, sizeof board_id, "rp2040-");
    pico_get_unique_board_id_string(board_id + 7, sizeof board_id - 7);
    wait_for_host();

    sa_core_config_t cfg = {
        .board_id = board_id,
        .fw_version = SA_BOARD_FW_VERSION,
        .level_every = 62, /* ~1 s */
        .heartbeat_ms = 1000,
        .clock_offset_ms = to_ms_since_boot(get_absolute_time()),
        .sink = usb_sink,
        .sink_ctx = NULL,
    };
    sa_core_init(&core, &cfg); /* sends HELLO */
    if (watchdog_resets != 0) {
        char line[SA_PROTO_MAX_LINE];
        usb_sink(NULL, line, sa_proto_error(&core.proto, line, sa_core_uptime_ms(&core),
                                            SA_ERR_INTERNAL, watchdog_resets));
    }
    pdm_mic_config_t mic = {SA_MIC_CLOCK_PIN, SA_MIC_DATA_PIN};
    if (!pdm_mic_start(&mic)) {
        for (;;) { /* a known fault, not a hang: keep telling the host */
            char line[SA_PROTO_MAX_LINE];
            usb_sink(NULL, line, sa_proto_error(&core.proto, line, sa_core_uptime_ms(&core),
                                                SA_ERR_MIC, 1));
            led_show(0);
            for (int i = 0; i < 100; i++) {
                watchdog_update();
                sleep_ms(10);
            }
        }
    }
#ifdef SA_WITH_TFLM
    bool classifier = sa_classifier_init();
#endif
    for (;;) {
        if (!pdm_mic_read(pcm)) {
            /* Sleep until the next interrupt. Interrupts are masked around the check so a
             * block finished between the check and the WFI still wakes it. */
            uint32_t saved = save_and_disable_interrupts();
            if (!pdm_mic_ready()) {
                __wfi();
            }
            restore_interrupts(saved);
            continue;
        }
        watchdog_update();
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
        report_dropped_lines();
        led_show(SA_BLINK_LISTENING_US);
    }
}
