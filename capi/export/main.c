/* shiftkit example: classify images with the exported model (model_data.c) through the C API
 * (shiftkit.h), printing one report line per image as shiftkit's boards do:
 *
 *   image I label L pred P logits [a, b, ...]
 *
 * Built with -DSK_EXAMPLE_DIGITS (and test_digits.c) it runs those test digits, as
 * `cargo xtask export c ... --check` does; without, one blank image. The first image also runs
 * through sk_run_profiled, printing one `op` line per op with the ticks of SK_EXAMPLE_NOW()
 * (define it as your timer: a cycle counter, SysTick, clock(); 0 without one). */
#include <stdio.h>

#include "model_data.h"
#include "shiftkit.h"

#ifdef SK_EXAMPLE_DIGITS
#include "test_digits.h"
#else
#define SK_TEST_IMAGES 1
static const uint8_t sk_test_images[SK_TEST_IMAGES][SK_MODEL_INPUT_BYTES] = {{0}};
static const uint8_t sk_test_labels[SK_TEST_IMAGES] = {0};
#endif

#ifndef SK_EXAMPLE_NOW
#define SK_EXAMPLE_NOW() 0ul
#endif

/* The arena: RAM, at the model's alignment; any number of runs reuse it. */
static uint8_t arena[SK_MODEL_ARENA_BYTES] SK_ALIGNED(SK_MODEL_ARENA_ALIGN);

/* Per-op ticks of one profiled run. */
struct op_times {
    unsigned long begin;
    unsigned long ticks[SK_MODEL_OPS];
    const char *kind[SK_MODEL_OPS];
};

static void on_op(void *user, size_t op_index, const char *kind, sk_op_event event) {
    struct op_times *t = (struct op_times *)user;
    if (op_index >= SK_MODEL_OPS) {
        return;
    }
    if (event == SK_OP_BEGIN) {
        t->begin = SK_EXAMPLE_NOW();
    } else {
        t->ticks[op_index] = SK_EXAMPLE_NOW() - t->begin;
        t->kind[op_index] = kind;
    }
}

int main(void) {
    static sk_model model;
    static struct op_times times;
    int8_t logits[SK_MODEL_CLASSES];
    size_t arena_bytes = 0, arena_align = 0, input_len = 0, classes = 0, ops = 0;
    size_t image, c, correct = 0;
    sk_status s = sk_model_load(&model, shiftkit_model_data, sizeof shiftkit_model_data);
    if (s != SK_OK) {
        printf("error: embedded model: %s\n", sk_status_message(s));
        return 1;
    }
    if (sk_model_arena(&model, &arena_bytes, &arena_align) != SK_OK ||
        sk_model_input_len(&model, &input_len) != SK_OK ||
        sk_model_classes(&model, &classes) != SK_OK || sk_model_ops(&model, &ops) != SK_OK ||
        arena_bytes > sizeof arena || input_len != SK_MODEL_INPUT_BYTES ||
        classes != SK_MODEL_CLASSES || ops != SK_MODEL_OPS) {
        printf("error: model_data.h does not describe model_data.c (re-export both)\n");
        return 1;
    }
    printf("shiftkit c-example: model %lu B, arena %lu B (align %lu), input %lu B, %lu classes, "
           "%lu ops, %lu images\n",
           (unsigned long)sizeof shiftkit_model_data, (unsigned long)arena_bytes,
           (unsigned long)arena_align, (unsigned long)input_len, (unsigned long)classes,
           (unsigned long)ops, (unsigned long)SK_TEST_IMAGES);
    for (image = 0; image < SK_TEST_IMAGES; ++image) {
        size_t pred = 0;
        if (image == 0) {
            s = sk_run_profiled(&model, sk_test_images[image], input_len, arena, sizeof arena,
                                logits, sizeof logits, on_op, &times);
        } else {
            s = sk_run(&model, sk_test_images[image], input_len, arena, sizeof arena, logits,
                       sizeof logits);
        }
        if (s != SK_OK) {
            printf("error: image %lu: %s\n", (unsigned long)image, sk_status_message(s));
            return 1;
        }
        for (c = 1; c < classes; ++c) {
            if (logits[c] > logits[pred]) {
                pred = c;
            }
        }
        correct += pred == sk_test_labels[image];
        printf("image %lu label %u pred %lu logits [", (unsigned long)image,
               (unsigned)sk_test_labels[image], (unsigned long)pred);
        for (c = 0; c < classes; ++c) {
            printf(c ? ", %d" : "%d", (int)logits[c]);
        }
        printf("]\n");
    }
    for (c = 0; c < ops; ++c) {
        printf("op %lu %s ticks %lu\n", (unsigned long)c, times.kind[c], times.ticks[c]);
    }
    printf("accuracy %lu/%lu\n", (unsigned long)correct, (unsigned long)SK_TEST_IMAGES);
    return 0;
}
