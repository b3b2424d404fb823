// TensorFlow Lite Micro classifier hook. Built only with -DSA_WITH_TFLM=ON (pico-tflmicro).
// Compiles and links against pico-tflmicro (not in CI: the release image is built without it);
// a starting point with a static arena and only the ops the model uses.
#include "classifier.h"

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

extern "C" const unsigned char g_sa_model[];

namespace {
constexpr int kArenaBytes = 32 * 1024;
constexpr int kFramesPerInference = 62;  // ~1 s of 16 ms frames
alignas(16) uint8_t arena[kArenaBytes];
tflite::MicroInterpreter *interpreter = nullptr;
int frames = 0;
}  // namespace

extern "C" bool sa_classifier_init(void)
{
    static tflite::MicroMutableOpResolver<4> resolver;
    resolver.AddFullyConnected();
    resolver.AddRelu();
    resolver.AddSoftmax();
    resolver.AddReshape();
    static tflite::MicroInterpreter instance(tflite::GetModel(g_sa_model), resolver, arena,
                                             kArenaBytes);
    if (instance.AllocateTensors() != kTfLiteOk) {
        return false;
    }
    // The features go in as int8, one frame's SA_N_BANDS values at a time, and the scores come
    // out as int8: a model that does not take that stays unused (and nothing overruns its
    // tensors).
    const TfLiteTensor *input = instance.input(0);
    const TfLiteTensor *output = instance.output(0);
    if (input->type != kTfLiteInt8 || input->bytes < SA_N_BANDS || output->type != kTfLiteInt8) {
        return false;
    }
    interpreter = &instance;
    return true;
}

extern "C" int sa_classifier_step(const sa_features_t *features, uint16_t *score_pm)
{
    if (interpreter == nullptr) {
        return -1;
    }
    TfLiteTensor *input = interpreter->input(0);
    int8_t *in = input->data.int8;
    int per_frame = SA_N_BANDS;
    if (input->bytes < static_cast<size_t>((frames + 1) * per_frame)) {
        frames = 0;
    }
    for (int b = 0; b < SA_N_BANDS; b++) {
        // dBFS x 100 -> int8: -120..0 dB mapped onto -128..127 by the model's own quantisation.
        float db = features->band_cdb[b] / 100.0f;
        int q = static_cast<int>(db / input->params.scale) + input->params.zero_point;
        in[frames * per_frame + b] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
    }
    if (++frames < kFramesPerInference) {
        return -1;
    }
    frames = 0;
    if (interpreter->Invoke() != kTfLiteOk) {
        return -1;
    }
    TfLiteTensor *out = interpreter->output(0);
    int best = 0;
    for (int i = 1; i < out->dims->data[out->dims->size - 1]; i++) {
        if (out->data.int8[i] > out->data.int8[best]) {
            best = i;
        }
    }
    float p = (out->data.int8[best] - out->params.zero_point) * out->params.scale;
    *score_pm = static_cast<uint16_t>(p < 0 ? 0 : (p > 1 ? 1000 : p * 1000));
    return best;
}
