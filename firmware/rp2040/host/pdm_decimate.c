/* Host driver of core/sa_pdm: raw PDM words (uint32 little-endian, first bit in the most
 * significant position) on stdin -> 16 kHz s16le PCM on stdout. For the tests. */
#include <stdio.h>

#include "sa_pdm.h"

#define SAMPLES 160

int main(void)
{
    sa_pdm_t pdm;
    sa_pdm_init(&pdm);
    uint32_t words[SAMPLES * SA_PDM_WORDS_PER_SAMPLE];
    int16_t pcm[SAMPLES];
    for (;;) {
        size_t got = fread(words, sizeof words[0], SAMPLES * SA_PDM_WORDS_PER_SAMPLE, stdin);
        size_t n = got / SA_PDM_WORDS_PER_SAMPLE;
        if (n == 0) {
            break;
        }
        sa_pdm_decimate(&pdm, words, pcm, n);
        if (fwrite(pcm, sizeof pcm[0], n, stdout) != n) {
            return 2;
        }
    }
    return ferror(stdin) ? 2 : 0;
}
