/* PDM to PCM: a 4th-order CIC decimator (R = 64: 1.024 MHz of 1-bit PDM -> 16 kHz) followed by
 * a DC blocker, as a PDM MEMS microphone on the board needs. Portable and host-tested; the
 * board's PIO + DMA only deliver the raw bits.
 *
 * Input: 32-bit words of PDM bits, the first bit in the most significant position (a PIO
 * `in pins, 1` shifting left with autopush at 32). A 1 bit is +1, a 0 bit -1; a bit density
 * of d in [0, 1] gives the PCM value (2d - 1) * 32768 (clamped to int16).
 *
 * The integrators advance a byte (8 bits) at a time from a 256-entry table: about 7 times
 * fewer operations than one bit at a time, with identical results (unsigned, modular
 * arithmetic, as a CIC needs). */
#ifndef SA_PDM_H
#define SA_PDM_H

#include <stddef.h>
#include <stdint.h>

#define SA_PDM_DECIMATION 64u
#define SA_PDM_WORDS_PER_SAMPLE (SA_PDM_DECIMATION / 32u)

typedef struct {
    uint32_t integ[4];
    uint32_t comb[4];
    int32_t dc_x;
    int32_t dc_y;
} sa_pdm_t;

void sa_pdm_init(sa_pdm_t *d);
/* Decimates n samples from words[n * SA_PDM_WORDS_PER_SAMPLE] into pcm[n]. */
void sa_pdm_decimate(sa_pdm_t *d, const uint32_t *words, int16_t *pcm, size_t n);

#endif
