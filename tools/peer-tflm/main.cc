// The TFLite Micro peer of `cargo xtask bench peer --engine tflm`: loads the .tflite from a C
// array, registers the ops the model uses (AddOps, generated next to the model array), runs
// every bundled test image and prints, through Arm semihosting on QEMU mps2-an386:
//   image I ticks T logits L0 L1 ...   (T: SysTick ticks of Invoke(); 40 instructions each)
//   arena_used_bytes N
//   done N
// The image bytes are raw u8 pixels; an int8 input takes pixel - 128 (the exporter's
// int8 input convention, zero point -128), a u8 input the pixels as they are.
#include <stdint.h>
#include <string.h>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

using Resolver = tflite::MicroMutableOpResolver<32>;

extern const unsigned char g_model[];
extern const unsigned char g_images[];
extern const unsigned int g_num_images, g_image_bytes;
TfLiteStatus AddOps(Resolver& r);

extern "C" {
void semihost_write(const char* s);
void systick_start(void);
uint64_t systick_ticks(void);
}

namespace {
constexpr size_t kArenaBytes = 1536 * 1024;
alignas(16) uint8_t arena[kArenaBytes];

char line[4096];
size_t len;
void put(const char* s) {
  while (*s && len + 1 < sizeof line) line[len++] = *s++;
}
void put(int64_t v) {
  char b[24];
  int n = 0;
  bool neg = v < 0;
  uint64_t u = neg ? -static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  do b[n++] = static_cast<char>('0' + u % 10); while ((u /= 10) && n < 22);
  if (neg) b[n++] = '-';
  while (n && len + 1 < sizeof line) line[len++] = b[--n];
}
void flush() {
  line[len++] = '\n';
  line[len] = 0;
  semihost_write(line);
  len = 0;
}
int fail(const char* what) {
  put("error ");
  put(what);
  flush();
  return 1;
}
}  // namespace

int main() {
  const tflite::Model* model = tflite::GetModel(g_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) return fail("model schema version");
  static Resolver resolver;
  if (AddOps(resolver) != kTfLiteOk) return fail("AddOps");
  static tflite::MicroInterpreter interpreter(model, resolver, arena, kArenaBytes);
  if (interpreter.AllocateTensors() != kTfLiteOk) return fail("AllocateTensors (arena too small or an op unsupported)");
  TfLiteTensor* in = interpreter.input(0);
  TfLiteTensor* out = interpreter.output(0);
  if (in->bytes != g_image_bytes) return fail("input size differs from the images'");
  if (out->type != kTfLiteInt8) return fail("output is not int8");
  systick_start();
  for (unsigned i = 0; i < g_num_images; i++) {
    const uint8_t* px = g_images + static_cast<size_t>(i) * g_image_bytes;
    if (in->type == kTfLiteInt8) {
      for (unsigned j = 0; j < g_image_bytes; j++) in->data.int8[j] = static_cast<int8_t>(px[j] - 128);
    } else if (in->type == kTfLiteUInt8) {
      memcpy(in->data.uint8, px, g_image_bytes);
    } else {
      return fail("input is neither int8 nor uint8");
    }
    uint64_t t0 = systick_ticks();
    TfLiteStatus s = interpreter.Invoke();
    uint64_t t1 = systick_ticks();
    if (s != kTfLiteOk) return fail("Invoke");
    put("image ");
    put(static_cast<int64_t>(i));
    put(" ticks ");
    put(static_cast<int64_t>(t1 - t0));
    put(" logits");
    for (size_t j = 0; j < out->bytes; j++) {
      put(" ");
      put(static_cast<int64_t>(out->data.int8[j]));
    }
    flush();
  }
  put("arena_used_bytes ");
  put(static_cast<int64_t>(interpreter.arena_used_bytes()));
  flush();
  put("done ");
  put(static_cast<int64_t>(g_num_images));
  flush();
  return 0;
}
