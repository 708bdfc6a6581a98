// {{name}}: a Weft compute step in C. Greets `input.name`.
//
// The types and functions named weft_step_* and exports_weft_step_* come from
// bindings/compute_step.h, which `weft plugin build` generates from wit/ on
// every build, so they always match the contract.
#include <stdio.h>
#include <string.h>

#include "compute_step.h"
#include "json.h"

// Fails the attempt as a `plugin_error` of the given kind.
static bool fail(exports_weft_step_compute_step_error_t *err, uint8_t tag, const char *message) {
    err->tag = tag;
    compute_step_string_dup(&err->val.fatal, message); // every case holds a string
    return false;
}

// Logs one line into the step's log.
static void info(const char *message) {
    compute_step_string_t s;
    compute_step_string_set(&s, message);
    weft_step_log_log(WEFT_STEP_LOG_LEVEL_INFO, &s);
}

bool exports_weft_step_compute_run(exports_weft_step_compute_step_context_t *ctx,
                                   exports_weft_step_compute_json_t *input,
                                   exports_weft_step_compute_step_output_t *ret,
                                   exports_weft_step_compute_step_error_t *err) {
    char name[256];
    (void)ctx; // ctx->attempt, ctx->step_id, ... say which attempt this is
    if (!json_get_string((const char *)input->ptr, input->len, "name", name, sizeof name) || name[0] == '\0') {
        exports_weft_step_compute_json_free(input);
        return fail(err, WEFT_STEP_TYPES_STEP_ERROR_INVALID_INPUT, "`name` must be a non-empty string (at most 255 bytes)");
    }
    exports_weft_step_compute_json_free(input);
    printf("greeting %s\n", name);
    info("computed the greeting");

    char greeting[300], out[700];
    size_t used = 0;
    snprintf(greeting, sizeof greeting, "Hello, %s!", name);
    used += (size_t)snprintf(out, sizeof out, "{\"greeting\":");
    if (!json_put_string(out, sizeof out, &used, greeting) || used + 2 > sizeof out) {
        return fail(err, WEFT_STEP_TYPES_STEP_ERROR_FATAL, "the output does not fit its buffer");
    }
    out[used++] = '}';
    out[used] = '\0';
    compute_step_string_dup(&ret->output, out);
    ret->actions.ptr = NULL; // actions for other nodes: weft_step_types_action_t
    ret->actions.len = 0;
    return true;
}
