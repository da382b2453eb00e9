// Compiled by capi/tests/header.rs with g++ and arm-none-eabi-g++ (-std=c++17 -Wall -Wextra
// -Werror): shiftkit.h from C++, its declarations in extern "C".
#include "shiftkit.h"

// C headers only (through shiftkit.h): a bare-metal C++ toolchain may have no libstdc++.

static_assert(sizeof(sk_model) == SK_HANDLE_BYTES, "the handle has its documented size");
static_assert(alignof(sk_model) <= SK_HANDLE_ALIGN, "the handle has at most its alignment");

namespace {

struct Timer {
    size_t begun = 0;
    size_t ended = 0;
};

extern "C" void on_op(void *user, size_t op_index, const char *kind, sk_op_event event) {
    auto *t = static_cast<Timer *>(user);
    (void)op_index;
    (void)kind;
    if (event == SK_OP_BEGIN) {
        ++t->begun;
    } else {
        ++t->ended;
    }
}

}  // namespace

// One classification: load, check, run; the predicted class, or -1.
int classify(const uint8_t *bytes, size_t len, const uint8_t *pixels,
             size_t pixels_len, void *arena, size_t arena_len) {
    sk_model model;
    if (sk_model_load(&model, bytes, len) != SK_OK) {
        return -1;
    }
    int8_t logits[16] = {};
    size_t classes = 0;
    if (sk_model_classes(&model, &classes) != SK_OK || classes > sizeof logits) {
        return -1;
    }
    Timer timer;
    sk_status s = sk_run_profiled(&model, pixels, pixels_len, arena, arena_len, logits,
                                  sizeof logits, on_op, &timer);
    if (s != SK_OK || timer.begun != timer.ended) {
        return -1;
    }
    s = sk_run(&model, pixels, pixels_len, arena, arena_len, logits, sizeof logits);
    if (s != SK_OK) {
        return -1;
    }
    int best = 0;
    for (size_t i = 1; i < classes; ++i) {
        if (logits[i] > logits[best]) {
            best = static_cast<int>(i);
        }
    }
    return best;
}
