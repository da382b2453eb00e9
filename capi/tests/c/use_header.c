/* Compiled by capi/tests/header.rs with gcc and arm-none-eabi-gcc (-std=c99 -Wall -Wextra
 * -Werror -pedantic): every call of shiftkit.h, as a C program would make it. */
#include "shiftkit.h"

typedef char sk_handle_is_its_size[(sizeof(sk_model) == SK_HANDLE_BYTES) ? 1 : -1];

static void on_op(void *user, size_t op_index, const char *kind, sk_op_event event) {
    unsigned long *ops = (unsigned long *)user;
    (void)kind;
    if (event == SK_OP_END) {
        *ops += (unsigned long)op_index + 1u;
    }
}

int use_header(const uint8_t *bytes, size_t len, const uint8_t *pixels, void *arena,
               size_t arena_len, int8_t *logits, size_t logits_len);

int use_header(const uint8_t *bytes, size_t len, const uint8_t *pixels, void *arena,
               size_t arena_len, int8_t *logits, size_t logits_len) {
    sk_model model;
    size_t need = 0, align = 0, h = 0, w = 0, c = 0, input_len = 0, classes = 0, ops = 0;
    size_t name_len = 0;
    const char *name = NULL;
    unsigned long seen = 0;
    sk_status s = sk_model_load(&model, bytes, len);
    if (s != SK_OK) {
        return (int)sk_status_message(s)[0];
    }
    if (sk_model_arena(&model, &need, &align) != SK_OK ||
        sk_model_input_shape(&model, &h, &w, &c) != SK_OK ||
        sk_model_input_len(&model, &input_len) != SK_OK ||
        sk_model_classes(&model, &classes) != SK_OK || sk_model_ops(&model, &ops) != SK_OK) {
        return -1;
    }
    if (sk_model_class_name(&model, 0, &name, &name_len) != SK_ERR_NO_CLASS_NAMES) {
        return -2;
    }
    s = sk_run(&model, pixels, input_len, arena, arena_len, logits, logits_len);
    if (s != SK_OK) {
        return -3;
    }
    s = sk_run_profiled(&model, pixels, input_len, arena, arena_len, logits, logits_len, on_op,
                        &seen);
    return s == SK_OK ? (int)(seen + need + align + h * w * c + classes + ops) : -4;
}

const char *shiftkit_version(void);
const char *shiftkit_version(void) { return sk_version(); }
