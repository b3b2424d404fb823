/* sa_core_wav: run the RP2040 core on a 16 kHz mono s16 WAV (or raw s16le) and write the
 * serial protocol lines it would send to stdout, byte for byte. The clock is the sample clock.
 * Diagnostics go to stderr only; stdout carries nothing but protocol lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sa_core.h"
#include "wav_reader.h"

static void usage(FILE *f)
{
    fputs("usage: sa_core_wav [--raw] [--board-id ID] [--level-every FRAMES]\n"
          "                   [--heartbeat-ms MS] [--block SAMPLES] [FILE|-]\n"
          "Runs the soundalert RP2040 core on 16 kHz mono 16-bit audio (WAV, or raw s16le\n"
          "with --raw; '-' or no FILE reads stdin) and writes $SA1 protocol lines to stdout.\n",
          f);
}

static void sink(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    fwrite(line, 1, len, stdout);
}

static int parse_u32(const char *s, unsigned long max, uint32_t *out)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || v > max) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    static sa_core_t core;
    static int16_t block[4096];
    sa_core_config_t cfg = {"host", SA_FW_VERSION, 0, 1000, 0, sink, NULL};
    bool raw = false;
    uint32_t block_len = 160;
    const char *path = "-";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--raw") == 0) {
            raw = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--board-id") == 0 && v != NULL) {
            cfg.board_id = v;
            i++;
        } else if (strcmp(a, "--level-every") == 0 && v != NULL && parse_u32(v, 1000000, &cfg.level_every) == 0) {
            i++;
        } else if (strcmp(a, "--heartbeat-ms") == 0 && v != NULL && parse_u32(v, 86400000, &cfg.heartbeat_ms) == 0) {
            i++;
        } else if (strcmp(a, "--block") == 0 && v != NULL && parse_u32(v, 4096, &block_len) == 0 && block_len > 0) {
            i++;
        } else if (a[0] != '-' || strcmp(a, "-") == 0) {
            path = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 2;
    }
    wav_reader_t reader;
    const char *err = wav_open(&reader, f, raw);
    if (err != NULL) {
        fprintf(stderr, "sa_core_wav: %s: %s\n", path, err);
        return 2;
    }
    sa_core_init(&core, &cfg);
    size_t n;
    while ((n = wav_read(&reader, block, block_len)) > 0) {
        sa_core_push(&core, block, n);
    }
    if (f != stdin) {
        fclose(f);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
