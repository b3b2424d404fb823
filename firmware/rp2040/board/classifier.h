/* Optional on-device classifier hook (TensorFlow Lite Micro), compiled only with SA_WITH_TFLM.
 * The model is not part of this repository: link a `g_sa_model` array (xxd -i of a .tflite
 * file) that takes the core's band levels and returns class scores. */
#ifndef SA_CLASSIFIER_H
#define SA_CLASSIFIER_H

#include <stdbool.h>
#include <stdint.h>

#include "sa_dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

bool sa_classifier_init(void);
/* Feeds one frame's features; returns the best class and its score (per mille) when a new
 * inference completed, else -1. */
int sa_classifier_step(const sa_features_t *features, uint16_t *score_pm);

#ifdef __cplusplus
}
#endif

#endif
