/* 256-point complex radix-2 FFT in fixed point. */
#ifndef SA_FFT_H
#define SA_FFT_H

#include <stdint.h>

#include "sa_config.h"

/* In place, block floating point. Inputs must satisfy |re|, |im| <= 2^13. A stage halves its
 * output only when some input component exceeds 2^13, so quiet and broadband frames keep their
 * precision. Returns the number of halved stages s: the result is DFT(x) / 2^s. */
int sa_fft256(int32_t re[SA_FRAME_SAMPLES], int32_t im[SA_FRAME_SAMPLES]);

#endif
