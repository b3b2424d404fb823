/* PDM microphone on the RP2040: PIO clocks and samples it, DMA fills ping-pong buffers of raw
 * PDM words, and a DMA interrupt only restarts DMA, copies the finished buffer and sets a
 * flag. The main loop decimates (core/sa_pdm: CIC, 1.024 MHz -> 16 kHz) and hands PCM to the
 * portable core. */
#ifndef PDM_MIC_H
#define PDM_MIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PDM_CLOCK_HZ 1024000u
#define PDM_DECIMATION 64u /* 1.024 MHz / 64 = 16 kHz (SA_PDM_DECIMATION) */
#define PDM_BLOCK_SAMPLES 160u                 /* 10 ms of PCM per block */
#define PDM_BLOCK_WORDS (PDM_BLOCK_SAMPLES * PDM_DECIMATION / 32u)

typedef struct {
    unsigned clock_pin;
    unsigned data_pin;
} pdm_mic_config_t;

/* Returns false if no PIO state machine or DMA channel is free. */
bool pdm_mic_start(const pdm_mic_config_t *cfg);
/* A block is waiting to be read. */
bool pdm_mic_ready(void);
/* If a block is ready, decimates it into pcm[PDM_BLOCK_SAMPLES] and returns true. */
bool pdm_mic_read(int16_t pcm[PDM_BLOCK_SAMPLES]);
/* Blocks lost since the last call because the main loop was late (and resets the count). */
uint32_t pdm_mic_take_overruns(void);

#endif
