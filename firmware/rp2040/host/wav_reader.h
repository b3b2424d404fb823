/* Host-only input: a 16 kHz mono 16-bit PCM WAV, or raw s16le, from a stdio stream. */
#ifndef WAV_READER_H
#define WAV_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    bool raw;
    uint64_t remaining; /* data bytes left (WAV); UINT64_MAX for raw */
} wav_reader_t;

/* Returns NULL on success, else a static error message. */
const char *wav_open(wav_reader_t *r, FILE *f, bool raw);
/* Reads up to n samples; returns how many (0 at the end). */
size_t wav_read(wav_reader_t *r, int16_t *out, size_t n);

#endif
