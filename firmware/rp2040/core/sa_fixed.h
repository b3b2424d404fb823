/* Integer helpers: 10*log10 in centi-dB without floating point. */
#ifndef SA_FIXED_H
#define SA_FIXED_H

#include <stdint.h>

/* Index of the highest set bit of v (v > 0). */
int sa_msb64(uint64_t v);

/* 1000 * log10(v) rounded, i.e. 10*log10(v) in centi-dB; SA_FLOOR_CDB for v == 0.
 * Error below 0.01 dB. */
int32_t sa_cdb64(uint64_t v);

#endif
