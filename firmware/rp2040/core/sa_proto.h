/* Responder: the $SA1 line-framed serial protocol (schemas/serial-protocol.md).
 * Every writer fills a caller's buffer of SA_PROTO_MAX_LINE bytes and returns the line length
 * (including the final CR LF), or 0 if the line would not fit. */
#ifndef SA_PROTO_H
#define SA_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "sa_config.h"

#define SA_PROTO_VERSION 1
#define SA_PROTO_MAX_LINE 256
#define SA_PROTO_MAX_ID 32

typedef enum {
    SA_ERR_OVERRUN = 0, /* value: sample blocks dropped because the DSP fell behind */
    SA_ERR_MIC = 1,     /* value: board-specific microphone error code */
    SA_ERR_TX = 2,      /* value: lines dropped because the host did not read */
    SA_ERR_INTERNAL = 3,
} sa_error_code_t;

typedef struct {
    uint16_t seq; /* sequence number of the next line; wraps 65535 -> 0 */
} sa_proto_t;

/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor. */
uint16_t sa_crc16(const uint8_t *data, size_t len);

void sa_proto_init(sa_proto_t *p);
size_t sa_proto_hello(sa_proto_t *p, char *out, uint32_t uptime_ms, const char *board_id,
                      const char *fw_version);
size_t sa_proto_detection(sa_proto_t *p, char *out, uint32_t uptime_ms, const char *detector,
                          uint16_t confidence_pm, uint32_t onset_ms, uint16_t tone_hz,
                          uint16_t cycle);
size_t sa_proto_level(sa_proto_t *p, char *out, uint32_t uptime_ms, int32_t level_cdb,
                      const int32_t band_cdb[SA_N_BANDS]);
size_t sa_proto_heartbeat(sa_proto_t *p, char *out, uint32_t uptime_ms, uint32_t frames,
                          uint32_t overruns);
size_t sa_proto_error(sa_proto_t *p, char *out, uint32_t uptime_ms, sa_error_code_t code,
                      uint32_t value);

#endif
