#include "sa_fixed.h"

#include "sa_config.h"
#include "sa_tables.h"

/* 1000 * log10(2) in q16: log2 (q16) times this, >> 32, is centi-dB. */
#define SA_CDB_PER_LOG2_Q16 19728302LL

int sa_msb64(uint64_t v)
{
    int bit = 0;
    /* Binary search: the Cortex-M0+ has no count-leading-zeros instruction. */
    for (int shift = 32; shift > 0; shift >>= 1) {
        if (v >> shift) {
            v >>= shift;
            bit += shift;
        }
    }
    return bit;
}

int32_t sa_cdb64(uint64_t v)
{
    if (v == 0) {
        return SA_FLOOR_CDB;
    }
    int msb = sa_msb64(v);
    /* Mantissa in [2^31, 2^32). */
    uint32_t m = msb >= 31 ? (uint32_t)(v >> (msb - 31)) : (uint32_t)(v << (31 - msb));
    uint32_t index = (m >> 25) & (SA_LOG2_STEPS - 1);
    uint32_t t = (m >> 9) & 0xFFFFu;
    uint32_t lo = sa_log2_q16[index];
    uint32_t hi = sa_log2_q16[index + 1];
    uint32_t frac = lo + (uint32_t)(((uint64_t)(hi - lo) * t) >> 16);
    int64_t log2_q16 = (int64_t)msb * 65536 + (int64_t)frac;
    return (int32_t)((log2_q16 * SA_CDB_PER_LOG2_Q16 + (1LL << 31)) >> 32);
}
