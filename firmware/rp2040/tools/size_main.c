/* A minimal Cortex-M0+ image that links the whole portable core, for `make size`.
 * Not a firmware: it only gives the linker every core entry point to keep. */
#include "sa_core.h"

static sa_core_t core;
static int16_t block[160];
static volatile size_t sent;

static void sink(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    (void)line;
    sent += len;
}

int main(void)
{
    sa_core_config_t cfg = {"size", SA_FW_VERSION, 62, 1000, 0, sink, NULL};
    sa_core_init(&core, &cfg);
    for (;;) {
        sa_core_push(&core, block, sizeof block / sizeof block[0]);
        if (sent == 0) {
            sa_core_overrun(&core, 1);
        }
    }
}
