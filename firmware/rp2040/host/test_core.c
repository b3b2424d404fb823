/* Host unit tests of the portable core (built with ASan/UBSan by `make test`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sa_core.h"
#include "sa_fft.h"
#include "sa_fixed.h"

static int failures;
static int checks;

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        checks++;                                                                           \
        if (!(cond)) {                                                                      \
            failures++;                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);        \
        }                                                                                   \
    } while (0)

#define PI 3.14159265358979323846
#define SECONDS(s) ((size_t)((s) * SA_SAMPLE_RATE_HZ))

/* ---- signal helpers --------------------------------------------------------------------- */

static uint32_t lcg_state = 12345u;

static double noise(void)
{
    /* Uniform in [-1, 1): deterministic, no libc rand(). */
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (double)(lcg_state >> 8) / 8388608.0 - 1.0;
}

static int16_t to_s16(double v)
{
    double s = round(v * 32768.0);
    return (int16_t)(s > 32767.0 ? 32767.0 : (s < -32768.0 ? -32768.0 : s));
}

/* Writes a gated tone: (on, off) seconds pairs, `cycles` times; square when `square` != 0. */
static size_t gated(int16_t *out, size_t cap, const double *on_off, int pairs, int cycles,
                    double hz, double amp, int square, double noise_amp)
{
    size_t n = 0;
    for (int c = 0; c < cycles; c++) {
        for (int p = 0; p < pairs; p++) {
            size_t on = SECONDS(on_off[2 * p]);
            size_t off = SECONDS(on_off[2 * p + 1]);
            for (size_t i = 0; i < on + off && n < cap; i++, n++) {
                double t = (double)n / SA_SAMPLE_RATE_HZ;
                double s = sin(2 * PI * hz * t);
                if (square) {
                    s = s >= 0 ? 0.8 : -0.8;
                }
                out[n] = to_s16((i < on ? amp * s : 0.0) + noise_amp * noise());
            }
        }
    }
    return n;
}

/* ---- a sink that records lines ---------------------------------------------------------- */

typedef struct {
    char text[65536];
    size_t len;
    int lines;
} capture_t;

static void capture_sink(void *ctx, const char *line, size_t len)
{
    capture_t *c = ctx;
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, line, len);
        c->len += len;
        c->text[c->len] = '\0';
    }
    c->lines++;
}

static int count(const char *haystack, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(haystack, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static int16_t audio[SA_SAMPLE_RATE_HZ * 24];
static sa_core_t core;
static capture_t cap;

static void run_core(const int16_t *x, size_t n, size_t block)
{
    sa_core_config_t cfg = {"test", "0.0.0", 0, 0, 0, capture_sink, &cap};
    memset(&cap, 0, sizeof cap);
    sa_core_init(&core, &cfg);
    for (size_t i = 0; i < n; i += block) {
        sa_core_push(&core, x + i, n - i < block ? n - i : block);
    }
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_crc16(void)
{
    CHECK(sa_crc16((const uint8_t *)"123456789", 9) == 0x29B1);
    CHECK(sa_crc16((const uint8_t *)"", 0) == 0xFFFF);
}

static void test_log(void)
{
    CHECK(sa_msb64(1) == 0);
    CHECK(sa_msb64(0x80000000ull) == 31);
    CHECK(sa_msb64(UINT64_MAX) == 63);
    CHECK(sa_cdb64(0) == SA_FLOOR_CDB);
    CHECK(sa_cdb64(1) == 0);
    CHECK(sa_cdb64(10) == 1000);
    int32_t worst = 0;
    for (uint64_t v = 1; v < (1ull << 62); v = v * 3 + 7) {
        int32_t want = (int32_t)lround(1000.0 * log10((double)v));
        int32_t err = abs(sa_cdb64(v) - want);
        worst = err > worst ? err : worst;
    }
    CHECK(worst <= 1);
}

static void test_fft_matches_dft(void)
{
    static int32_t re[SA_FRAME_SAMPLES], im[SA_FRAME_SAMPLES];
    double in[SA_FRAME_SAMPLES];
    for (int n = 0; n < SA_FRAME_SAMPLES; n++) {
        in[n] = round(6000.0 * sin(2 * PI * 10.3 * n / SA_FRAME_SAMPLES) + 2000.0 * noise());
        re[n] = (int32_t)in[n];
        im[n] = 0;
    }
    int scaled = sa_fft256(re, im);
    CHECK(scaled >= 4 && scaled <= 8);
    double scale = (double)(1 << scaled);
    double worst = 0;
    for (int k = 0; k <= SA_FRAME_SAMPLES / 2; k++) {
        double xr = 0, xi = 0;
        for (int n = 0; n < SA_FRAME_SAMPLES; n++) {
            xr += in[n] * cos(2 * PI * k * n / SA_FRAME_SAMPLES);
            xi -= in[n] * sin(2 * PI * k * n / SA_FRAME_SAMPLES);
        }
        double err = hypot(re[k] - xr / scale, im[k] - xi / scale);
        worst = err > worst ? err : worst;
    }
    fprintf(stderr, "fft: %d halved stages, worst error %.2f LSB\n", scaled, worst);
    /* Rounding: a few LSB at the output scale; halved stages add at most 0.5 LSB each. */
    CHECK(worst < 2.0 + 0.5 * scaled);
}

static void test_dsp_levels(void)
{
    static sa_dsp_t dsp;
    sa_features_t f;
    int16_t x[SA_FRAME_SAMPLES];
    /* 1 kHz sine at full scale: level -3.01 dBFS, all of it in band 2 (625-1500 Hz). */
    for (int n = 0; n < SA_FRAME_SAMPLES; n++) {
        x[n] = to_s16(0.99999 * sin(2 * PI * 1000.0 * n / SA_SAMPLE_RATE_HZ));
    }
    sa_dsp_init(&dsp);
    sa_dsp_frame(&dsp, x, &f);
    CHECK(abs(f.level_cdb - (-301)) <= 2);
    CHECK(abs(f.band_cdb[2] - (-301)) <= 5);
    CHECK(f.band_cdb[5] < -6000);
    /* A quiet 3.1 kHz tone: peak bin 50 (3125 Hz), tonal, about -60 dBFS. */
    for (int n = 0; n < SA_FRAME_SAMPLES; n++) {
        x[n] = to_s16(0.001 * sin(2 * PI * 3100.0 * n / SA_SAMPLE_RATE_HZ));
    }
    sa_dsp_frame(&dsp, x, &f);
    CHECK(f.high.bin == 50);
    CHECK(f.high.ratio_pm > 900);
    CHECK(abs(f.band_cdb[4] - (-6301)) <= 20);
    /* Silence: every level at the floor, no tone. */
    memset(x, 0, sizeof x);
    sa_dsp_frame(&dsp, x, &f);
    CHECK(f.level_cdb == SA_FLOOR_CDB);
    CHECK(f.band_cdb[0] == SA_FLOOR_CDB && f.band_cdb[5] == SA_FLOOR_CDB);
    CHECK(f.high.ratio_pm == 0);
    /* Floor tracking: the floor fell to the silent frame at once. */
    sa_dsp_frame(&dsp, x, &f);
    CHECK(f.floor_cdb[4] == SA_FLOOR_CDB);
}

static void test_proto_lines(void)
{
    sa_proto_t p;
    char line[SA_PROTO_MAX_LINE];
    sa_proto_init(&p);
    size_t n = sa_proto_hello(&p, line, 0, "rp2040-E661", "0.1.0");
    line[n] = '\0';
    /* CRC over "SA1,0,0,HELLO,rp2040-E661,0.1.0,16000,6" */
    const char *body = "SA1,0,0,HELLO,rp2040-E661,0.1.0,16000,6";
    char want[SA_PROTO_MAX_LINE];
    snprintf(want, sizeof want, "$%s*%04X\r\n", body, sa_crc16((const uint8_t *)body, strlen(body)));
    CHECK(strcmp(line, want) == 0);
    int32_t bands[SA_N_BANDS] = {-5, -12000, 0, 123, -100, -99999};
    n = sa_proto_level(&p, line, 16, -1, bands);
    line[n] = '\0';
    CHECK(strncmp(line, "$SA1,1,16,LEVEL,-0.01,-0.05,-120.00,0.00,1.23,-1.00,-999.99*", 60) == 0);
    n = sa_proto_detection(&p, line, 4294967295u, "t3", 1000, 7, 3125, 2);
    line[n] = '\0';
    CHECK(strncmp(line, "$SA1,2,4294967295,DET,t3,1.000,7,3125,2*", 40) == 0);
    /* Identifiers are sanitised and cut to 32 characters. */
    n = sa_proto_hello(&p, line, 0, "bad id,*$with-a-name-that-is-far-too-long", "1");
    line[n] = '\0';
    CHECK(strstr(line, ",bad_id___with-a-name-that-is-far,1,") != NULL);
    CHECK(strchr(line + 1, '$') == NULL);
    /* Sequence numbers wrap. */
    p.seq = 65535;
    n = sa_proto_heartbeat(&p, line, 5, 1, 0);
    line[n] = '\0';
    CHECK(strncmp(line, "$SA1,65535,5,HB,1,0*", 20) == 0);
    CHECK(p.seq == 0);
    n = sa_proto_error(&p, line, 5, SA_ERR_OVERRUN, 3);
    line[n] = '\0';
    CHECK(strncmp(line, "$SA1,0,5,ERR,overrun,3*", 23) == 0);
    CHECK(n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n');
}

static const double T3[] = {0.5, 0.5, 0.5, 0.5, 0.5, 1.5};
static const double T4[] = {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 5.0};

static void test_detects_t3(void)
{
    size_t n = SECONDS(0.5);
    memset(audio, 0, sizeof audio);
    n += gated(audio + n, sizeof audio / 2 - n, T3, 3, 3, 3100.0, 0.3, 0, 0.01);
    run_core(audio, n, 173);
    CHECK(count(cap.text, ",DET,t3,") == 3);
    CHECK(count(cap.text, ",DET,t4,") == 0 && count(cap.text, ",DET,lf520,") == 0);
    /* First cycle: onset at 0.5 s (frame 31 or 32), cycle numbers 1, 2, 3. */
    const char *det = strstr(cap.text, ",DET,t3,");
    CHECK(det != NULL && (strstr(det, ",496,3125,1*") != NULL || strstr(det, ",512,3125,1*") != NULL));
    CHECK(strstr(cap.text, ",3*") != NULL);
}

static void test_detects_t4(void)
{
    size_t n = SECONDS(0.3);
    memset(audio, 0, sizeof audio);
    n += gated(audio + n, sizeof audio / 2 - n, T4, 4, 2, 3300.0, 0.3, 0, 0.01);
    run_core(audio, n, 256);
    CHECK(count(cap.text, ",DET,t4,") == 2);
    CHECK(count(cap.text, ",DET,t3,") == 0);
}

static void test_detects_lf520(void)
{
    size_t n = SECONDS(0.2);
    memset(audio, 0, sizeof audio);
    n += gated(audio + n, sizeof audio / 2 - n, T3, 3, 2, 520.0, 0.3, 1, 0.01);
    run_core(audio, n, 1);
    CHECK(count(cap.text, ",DET,lf520,") == 2);
    CHECK(count(cap.text, ",DET,t3,") == 0); /* the square wave's harmonics are not a 3 kHz tone */
}

static void test_rejects_non_patterns(void)
{
    /* A continuous 0.5 s on / 0.5 s off beep train is not T3, even when it stops. */
    static const double train[] = {0.5, 0.5};
    size_t n = gated(audio, sizeof audio / 2, train, 1, 9, 3100.0, 0.3, 0, 0.01);
    memset(audio + n, 0, SECONDS(3) * 2);
    n += SECONDS(3);
    run_core(audio, n, 256);
    CHECK(count(cap.text, ",DET,") == 0);
    /* A steady tone. */
    static const double steady[] = {10.0, 2.0};
    n = gated(audio, sizeof audio / 2, steady, 1, 1, 3100.0, 0.3, 0, 0.01);
    run_core(audio, n, 256);
    CHECK(count(cap.text, ",DET,") == 0);
    /* Pulses of the right rhythm but 2 s long. */
    static const double slow[] = {2.0, 0.5, 2.0, 0.5, 2.0, 3.0};
    n = gated(audio, sizeof audio / 2, slow, 3, 1, 3100.0, 0.3, 0, 0.01);
    run_core(audio, n, 256);
    CHECK(count(cap.text, ",DET,") == 0);
    /* White noise. */
    for (size_t i = 0; i < SECONDS(20); i++) {
        audio[i] = to_s16(0.3 * noise());
    }
    run_core(audio, SECONDS(20), 256);
    CHECK(count(cap.text, ",DET,") == 0);
}

static void test_core_framing(void)
{
    /* Same audio in different block sizes gives byte-identical output. */
    size_t n = gated(audio, sizeof audio / 2, T3, 3, 2, 2900.0, 0.2, 0, 0.05);
    sa_core_config_t cfg = {"b", "1", 31, 1000, 0, capture_sink, &cap};
    static capture_t first;
    memset(&cap, 0, sizeof cap);
    sa_core_init(&core, &cfg);
    sa_core_push(&core, audio, n);
    first = cap;
    memset(&cap, 0, sizeof cap);
    sa_core_init(&core, &cfg);
    for (size_t i = 0; i < n; i += 7) {
        sa_core_push(&core, audio + i, n - i < 7 ? n - i : 7);
    }
    CHECK(first.len > 0 && first.len == cap.len && memcmp(first.text, cap.text, cap.len) == 0);
    /* 8 s of audio: HELLO, 8 heartbeats, 500 frames / 31 = 16 LEVEL lines, 2 detections. */
    CHECK(count(cap.text, ",HELLO,") == 1);
    CHECK(count(cap.text, ",HB,") == 8);
    CHECK(count(cap.text, ",LEVEL,") == 16);
    CHECK(count(cap.text, ",DET,t3,") == 2);
    CHECK(strstr(cap.text, "$SA1,0,0,HELLO,b,1,16000,6*") == cap.text);
    CHECK(strstr(cap.text, ",1008,HB,63,0*") != NULL); /* first HB after 63 frames (1008 ms) */
    sa_core_overrun(&core, 2);
    CHECK(strstr(cap.text, ",ERR,overrun,2*") != NULL);
    CHECK(core.overruns == 2);
}

int main(void)
{
    test_crc16();
    test_log();
    test_fft_matches_dft();
    test_dsp_levels();
    test_proto_lines();
    test_detects_t3();
    test_detects_t4();
    test_detects_lf520();
    test_rejects_non_patterns();
    test_core_framing();
    printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
