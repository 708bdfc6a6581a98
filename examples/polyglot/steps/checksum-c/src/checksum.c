// The polyglot example's fourth step, in C: seals the scored order with an
// FNV-1a checksum of its JSON text, and passes the order on beside it.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute_step.h"

bool exports_weft_step_compute_run(exports_weft_step_compute_step_context_t *ctx,
                                   exports_weft_step_compute_json_t *input,
                                   exports_weft_step_compute_step_output_t *ret,
                                   exports_weft_step_compute_step_error_t *err) {
    (void)ctx;
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < input->len; i++) {
        hash ^= input->ptr[i];
        hash *= 0x100000001b3ULL;
    }
    fprintf(stderr, "checksum: %zu bytes sealed\n", input->len);
    // {"checksum":"<16 hex>","order":<the input, which is a JSON object>}
    const char *head = "{\"checksum\":\"";
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, hash);
    size_t len = strlen(head) + 16 + strlen("\",\"order\":") + input->len + 1;
    char *out = malloc(len + 1);
    if (out == NULL) {
        exports_weft_step_compute_json_free(input);
        err->tag = WEFT_STEP_TYPES_STEP_ERROR_RETRYABLE;
        compute_step_string_dup(&err->val.retryable, "out of memory");
        return false;
    }
    int n = snprintf(out, len + 1, "%s%s\",\"order\":", head, hex);
    memcpy(out + n, input->ptr, input->len);
    out[n + input->len] = '}';
    ret->output.ptr = (uint8_t *)out; // the host frees it after the call
    ret->output.len = (size_t)n + input->len + 1;
    ret->actions.ptr = NULL;
    ret->actions.len = 0;
    exports_weft_step_compute_json_free(input);
    return true;
}
