/* 256-point complex radix-2 FFT in fixed point. */
#ifndef SA_FFT_H
#define SA_FFT_H

#include <stdint.h>

#include "sa_config.h"

/* In place. Inputs must satisfy |re + j im| <= 2^14; each of the 8 stages halves its output,
 * so the result is DFT(x) / 256, still within 2^14. */
void sa_fft256(int32_t re[SA_FRAME_SAMPLES], int32_t im[SA_FRAME_SAMPLES]);

#endif
