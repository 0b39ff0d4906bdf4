"""Harness sources around model.c: embedded test vectors, the firmware main, the host main.

Both mains print outputs as text lines a runner parses:

    out <vector> <output index> <hex bytes, two digits each, two's complement>
    mismatch <vector> <output index>      (only when expected outputs are embedded)
    error <vector> <run status>
    stack <peak bytes>                    (firmware only: painted-stack measurement)
"""
from __future__ import annotations

from string import Template

import numpy as np

from edgeq.codegen.carray import const_array


def vectors_c(inputs: list[np.ndarray], expected: list[np.ndarray] | None) -> tuple[str, str]:
    """(vectors.h, vectors.c) for N vectors: inputs[i] is [N, ...] int8 for model input i,
    expected[k] likewise for output k (or None: the firmware only prints)."""
    n = int(inputs[0].shape[0]) if inputs else 0
    defs, in_ids, exp_ids = [], [], []
    for i, a in enumerate(inputs):
        in_ids.append(f"vec_in{i}")
        defs.append(const_array(in_ids[-1], np.asarray(a, dtype=np.int8), f"input {i}: {n} vectors"))
    for k, a in enumerate(expected or []):
        exp_ids.append(f"vec_expected{k}")
        defs.append(const_array(exp_ids[-1], np.asarray(a, dtype=np.int8), f"expected output {k}"))
    header = VECTORS_H.template
    source = VECTORS_C.substitute(
        n=n, defs="\n".join(defs), inputs=", ".join(in_ids) or "0",
        expected=", ".join(exp_ids) or "0")
    return header, source


VECTORS_H = Template("""\
/* Test vectors embedded by edgeq (generated). Vector v of input i starts at
 * edgeq_vec_inputs[i] + v * size_i (sizes from EDGEQ_INPUT_SIZES); expected outputs
 * likewise, or NULL pointers when there are none. Values, not macros: a runner relinks
 * the same compiled main with other vectors. */
#ifndef EDGEQ_VECTORS_H
#define EDGEQ_VECTORS_H
#include <stdint.h>
extern const int32_t edgeq_num_vectors;
extern const int8_t *const edgeq_vec_inputs[];
extern const int8_t *const edgeq_vec_expected[];
#endif
""")

VECTORS_C = Template("""\
#include "model.h"
#include "vectors.h"

const int32_t edgeq_num_vectors = ${n};

${defs}
/* sized by model.h: missing entries are NULL (no vectors, or no expected outputs) */
const int8_t *const edgeq_vec_inputs[EDGEQ_NUM_INPUTS] = { ${inputs} };
const int8_t *const edgeq_vec_expected[EDGEQ_NUM_OUTPUTS] = { ${expected} };
""")

# Shared by every main: the text protocol's line printer. `emit(buf, len)` writes.
PRINT_LINE = """\
/* Decimal without division (the harness keeps the model's no-divide rule too). */
static char *put_dec(char *p, int32_t v)
{
    static const uint32_t pow10[10] = {1000000000u, 100000000u, 10000000u, 1000000u,
                                       100000u, 10000u, 1000u, 100u, 10u, 1u};
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    int k, started = 0;
    if (v < 0) {
        *p++ = '-';
    }
    for (k = 0; k < 10; k++) {
        char digit = '0';
        while (u >= pow10[k]) {
            u -= pow10[k];
            digit++;
        }
        if (digit != '0' || started || k == 9) {
            *p++ = digit;
            started = 1;
        }
    }
    return p;
}

/* "<word> <a> <b>" then hex bytes, written in chunks so no line buffer grows with size */
static void print_line(const char *word, int32_t a, int32_t b, const int8_t *bytes, int32_t n)
{
    static const char hex[] = "0123456789abcdef";
    char buf[132];
    char *p = buf;
    int32_t i;
    while (*word) {
        *p++ = *word++;
    }
    *p++ = ' ';
    p = put_dec(p, a);
    if (b >= 0) {
        *p++ = ' ';
        p = put_dec(p, b);
    }
    for (i = 0; i < n; i++) {
        uint8_t u = (uint8_t)bytes[i];
        if (i == 0) {
            *p++ = ' ';
        }
        *p++ = hex[u >> 4];
        *p++ = hex[u & 15u];
        if (p - buf > 120) {
            emit(buf, (int)(p - buf));
            p = buf;
        }
    }
    *p++ = '\\n';
    emit(buf, (int)(p - buf));
}
"""

# Shared by the inference mains: run every embedded vector, print, compare.
RUN_VECTORS = PRINT_LINE + """
static const int32_t in_sizes[EDGEQ_NUM_INPUTS] = EDGEQ_INPUT_SIZES;
static const int32_t out_sizes[EDGEQ_NUM_OUTPUTS] = EDGEQ_OUTPUT_SIZES;
static int8_t out_mem[EDGEQ_OUTPUT_TOTAL];

/* Runs every vector; returns the number of mismatching (or failing) outputs. */
static int run_vectors(void)
{
    int8_t *outs[EDGEQ_NUM_OUTPUTS];
    const int8_t *ins[EDGEQ_NUM_INPUTS];
    int mismatches = 0;
    int32_t v, i, k, off = 0;
    for (k = 0; k < EDGEQ_NUM_OUTPUTS; k++) {
        outs[k] = out_mem + off;
        off += out_sizes[k];
    }
    for (v = 0; v < edgeq_num_vectors; v++) {
        int rc;
        for (i = 0; i < EDGEQ_NUM_INPUTS; i++) {
            ins[i] = edgeq_vec_inputs[i] + v * in_sizes[i];
        }
        rc = edgeq_model_run_io(ins, outs);
        if (rc != 0) {
            print_line("error", v, rc, 0, 0);
            mismatches++;
            continue;
        }
        for (k = 0; k < EDGEQ_NUM_OUTPUTS; k++) {
            print_line("out", v, k, outs[k], out_sizes[k]);
            if (edgeq_vec_expected[k] != 0) {
                const int8_t *want = edgeq_vec_expected[k] + v * out_sizes[k];
                for (i = 0; i < out_sizes[k]; i++) {
                    if (want[i] != outs[k][i]) {
                        print_line("mismatch", v, k, 0, 0);
                        mismatches++;
                        break;
                    }
                }
            }
        }
    }
    return mismatches;
}
"""

FIRMWARE_MAIN = Template("""\
/* Firmware main (generated by edgeq): runs the embedded vectors through the model, prints
 * raw outputs over semihosting, and returns the number of mismatches against the integer
 * reference as the exit status (0 = bit-identical). */
#include <stdint.h>

#include "model.h"
#include "vectors.h"

extern void initialise_monitor_handles(void);   /* newlib rdimon: semihosting stdio */
extern int _write(int fd, const char *buf, int len);
extern uint32_t edgeq_stack_peak(void);          /* startup.c: painted-stack scan */
extern uint32_t edgeq_heap_peak(void);           /* startup.c: painted-heap scan */

static void emit(const char *buf, int len)
{
    _write(1, buf, len);
}

${run_vectors}
int main(void)
{
    int mismatches;
    initialise_monitor_handles();
    mismatches = run_vectors();
    print_line("stack", (int32_t)edgeq_stack_peak(), -1, 0, 0);
    print_line("heap", (int32_t)edgeq_heap_peak(), -1, 0, 0);
    return mismatches > 255 ? 255 : mismatches;
}
""")

RUN_RAW = """\
static int run_raw(long n)
{
    static int8_t in_mem[EDGEQ_INPUT_TOTAL];
    const int8_t *ins[EDGEQ_NUM_INPUTS];
    int8_t *outs[EDGEQ_NUM_OUTPUTS];
    int32_t off = 0, k;
    long s;
    for (k = 0; k < EDGEQ_NUM_INPUTS; k++) {
        ins[k] = in_mem + off;
        off += in_sizes[k];
    }
    off = 0;
    for (k = 0; k < EDGEQ_NUM_OUTPUTS; k++) {
        outs[k] = out_mem + off;
        off += out_sizes[k];
    }
    for (s = 0; s < n; s++) {
        if (fread(in_mem, 1, EDGEQ_INPUT_TOTAL, stdin) != EDGEQ_INPUT_TOTAL) {
            fprintf(stderr, "short input at sample %ld\\n", s);
            return 2;
        }
        if (edgeq_model_run_io(ins, outs) != 0) {
            fprintf(stderr, "model run failed at sample %ld\\n", s);
            return 3;
        }
        fwrite(out_mem, 1, EDGEQ_OUTPUT_TOTAL, stdout);
    }
    return 0;
}

"""

HOST_MAIN = Template("""\
/* Host main (generated by edgeq).
 *   model_host                 run the embedded vectors (self-check), print outputs
 *   model_host --raw N         read N samples of raw int8 inputs from stdin (each sample:
 *                              every input in order), write raw int8 outputs to stdout
 *   model_host --bench R       run vector 0 R times, print "ns_per_inference <n>" */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "vectors.h"

static void emit(const char *buf, int len)
{
    fwrite(buf, 1, (size_t)len, stdout);
}

${run_vectors}
${run_raw}static int bench(long reps)
{
    const int8_t *ins[EDGEQ_NUM_INPUTS];
    int8_t *outs[EDGEQ_NUM_OUTPUTS];
    struct timespec t0, t1;
    int32_t off = 0, k;
    long r;
    long long ns;
    if (edgeq_num_vectors == 0) {
        fprintf(stderr, "no embedded vector to benchmark\\n");
        return 4;
    }
    for (k = 0; k < EDGEQ_NUM_INPUTS; k++) {
        ins[k] = edgeq_vec_inputs[k];
    }
    for (k = 0; k < EDGEQ_NUM_OUTPUTS; k++) {
        outs[k] = out_mem + off;
        off += out_sizes[k];
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (r = 0; r < reps; r++) {
        if (edgeq_model_run_io(ins, outs) != 0) {
            return 3;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    printf("ns_per_inference %lld\\n", ns / (reps > 0 ? reps : 1));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--raw") == 0) {
        return run_raw(atol(argv[2]));
    }
    if (argc == 3 && strcmp(argv[1], "--bench") == 0) {
        return bench(atol(argv[2]));
    }
    {
        int mismatches = run_vectors();
        return mismatches > 255 ? 255 : mismatches;
    }
}
""")


def firmware_main_c() -> str:
    return FIRMWARE_MAIN.substitute(run_vectors=RUN_VECTORS)


def host_main_c() -> str:
    return HOST_MAIN.substitute(run_vectors=RUN_VECTORS, run_raw=RUN_RAW)


def arm64_main_c() -> str:
    return ARM64_MAIN.substitute(run_vectors=RUN_VECTORS, run_raw=RUN_RAW)


ARM64_MAIN = Template("""\
/* arm64 main (generated by edgeq): one static binary for qemu-aarch64, a phone (adb) or an
 * aarch64 Linux host.
 *   model_arm64               run the embedded vectors (self-check), print outputs
 *   model_arm64 --raw N       read N samples of raw int8 inputs from stdin (each sample:
 *                             every input in order), write raw int8 outputs to stdout
 *   model_arm64 --bench W R   run W warm-up and R timed inferences of vector 0 (zeros if
 *                             none is embedded); per timed run print
 *                             "time <run> <ns total> <ns layer 0> ... <ns layer L-1>"
 * model.c is compiled with -DEDGEQ_PROFILE -DEDGEQ_LAYER_MARK_IN_MAIN: edgeq_layer_mark,
 * called before each layer and after the last, is defined here and reads the clock only
 * while timing (a QEMU plugin counting instructions stops on its entry either way). */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "model.h"
#include "vectors.h"

static struct timespec stamps[EDGEQ_NUM_LAYERS + 1];
static volatile int timing;

__attribute__((noinline)) void edgeq_layer_mark(int layer)
{
    __asm__ volatile("" : : "r"(layer) : "memory");
    if (timing) {
        clock_gettime(CLOCK_MONOTONIC, &stamps[layer]);
    }
}

static long long ns_between(const struct timespec *a, const struct timespec *b)
{
    return (long long)(b->tv_sec - a->tv_sec) * 1000000000LL + (b->tv_nsec - a->tv_nsec);
}

static void emit(const char *buf, int len)
{
    fwrite(buf, 1, (size_t)len, stdout);
}
${run_vectors}
${run_raw}
static int bench(long warmup, long reps)
{
    static int8_t zeros[EDGEQ_INPUT_TOTAL];
    const int8_t *ins[EDGEQ_NUM_INPUTS];
    int8_t *outs[EDGEQ_NUM_OUTPUTS];
    int32_t off = 0, k;
    long r;
    for (k = 0; k < EDGEQ_NUM_INPUTS; k++) {
        ins[k] = edgeq_num_vectors > 0 ? edgeq_vec_inputs[k] : zeros + off;
        off += in_sizes[k];
    }
    off = 0;
    for (k = 0; k < EDGEQ_NUM_OUTPUTS; k++) {
        outs[k] = out_mem + off;
        off += out_sizes[k];
    }
    for (r = 0; r < warmup + reps; r++) {
        timing = r >= warmup;
        if (edgeq_model_run_io(ins, outs) != 0) {
            fprintf(stderr, "model run failed\\n");
            return 3;
        }
        if (timing) {
            printf("time %ld %lld", r - warmup, ns_between(&stamps[0], &stamps[EDGEQ_NUM_LAYERS]));
            for (k = 0; k < EDGEQ_NUM_LAYERS; k++) {
                printf(" %lld", ns_between(&stamps[k], &stamps[k + 1]));
            }
            printf("\\n");
        }
    }
    timing = 0;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--raw") == 0) {
        return run_raw(atol(argv[2]));
    }
    if (argc == 4 && strcmp(argv[1], "--bench") == 0) {
        return bench(atol(argv[2]), atol(argv[3]));
    }
    {
        int mismatches = run_vectors();
        return mismatches > 255 ? 255 : mismatches;
    }
}
""")


# ---- training mains (edgeq compile --train; edgeq train) ------------------------------------
# Lines:  step <k>                 after training step k (host: the progress a runner shows)
#         error <k> <status>       the step returned a non-zero status
#         state <i> <hex bytes>    state array i after the last step (codegen.train.state_layout)

def train_vectors_c(inputs: np.ndarray, labels: np.ndarray) -> tuple[str, str]:
    """(vectors.h, vectors.c) for a training firmware: N int8 inputs and their labels."""
    header, source = vectors_c([inputs], None)
    return header, source + "\n" + const_array("edgeq_vec_labels", np.asarray(labels, np.int16),
                                               f"labels of the {len(labels)} samples", storage="const")


TRAIN_COMMON = PRINT_LINE + """
extern const int16_t edgeq_vec_labels[];

/* noinline and with a side effect: a profiler counts instructions from one call to the next */
__attribute__((noinline)) void edgeq_train_mark(int k)
{
    __asm__ volatile("" : : "r"(k) : "memory");
}

static int train_one(int32_t k, const int8_t *input, int32_t label)
{
    int rc;
    edgeq_train_mark(0);
    rc = edgeq_model_train_step(input, label);
    edgeq_train_mark(1);
    if (rc != 0) {
        print_line("error", k, rc, 0, 0);
        return 1;
    }
    print_line("step", k, -1, 0, 0);
    return 0;
}

static void print_state(void)
{
    int32_t i;
    for (i = 0; i < EDGEQ_TRAIN_STATE_ARRAYS; i++) {
        const uint8_t *bytes = 0;
        int32_t n = edgeq_model_train_state(i, &bytes);
        print_line("state", i, -1, (const int8_t *)bytes, n);
    }
}

/* Trains on the embedded samples in order; returns the number of failed steps. */
static int train_vectors(void)
{
    int failures = 0;
    int32_t v;
    for (v = 0; v < edgeq_num_vectors; v++) {
        failures += train_one(v, edgeq_vec_inputs[0] + v * EDGEQ_INPUT_TOTAL, edgeq_vec_labels[v]);
    }
    return failures;
}
"""

FIRMWARE_TRAIN_MAIN = Template("""\
/* Training firmware main (generated by edgeq): one training step per embedded sample, in
 * order, then the learned state over semihosting; exit status = failed steps. */
#include <stdint.h>

#include "model.h"
#include "vectors.h"

extern void initialise_monitor_handles(void);
extern int _write(int fd, const char *buf, int len);
extern uint32_t edgeq_stack_peak(void);
extern uint32_t edgeq_heap_peak(void);

static void emit(const char *buf, int len)
{
    _write(1, buf, len);
}

${train_common}
int main(void)
{
    int failures;
    initialise_monitor_handles();
    failures = train_vectors();
    print_state();
    print_line("stack", (int32_t)edgeq_stack_peak(), -1, 0, 0);
    print_line("heap", (int32_t)edgeq_heap_peak(), -1, 0, 0);
    return failures > 255 ? 255 : failures;
}
""")

HOST_TRAIN_MAIN = Template("""\
/* Host training main (generated by edgeq).
 *   model_train              train on the embedded samples, print the learned state
 *   model_train --stream N   read N samples from stdin (each: the int8 input, then the label
 *                            as int16 little-endian), one step each, then print the state */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "vectors.h"

static void emit(const char *buf, int len)
{
    fwrite(buf, 1, (size_t)len, stdout);
}

${train_common}
static int train_stream(long n)
{
    static int8_t in_mem[EDGEQ_INPUT_TOTAL + 2];
    int failures = 0;
    long s;
    for (s = 0; s < n; s++) {
        int32_t label;
        if (fread(in_mem, 1, sizeof in_mem, stdin) != sizeof in_mem) {
            fprintf(stderr, "short input at sample %ld\\n", s);
            return -1;
        }
        label = (int16_t)((uint16_t)(uint8_t)in_mem[EDGEQ_INPUT_TOTAL]
                          | (uint16_t)((uint16_t)(uint8_t)in_mem[EDGEQ_INPUT_TOTAL + 1] << 8));
        failures += train_one((int32_t)s, in_mem, label);
        if ((s & 15) == 15) {
            fflush(stdout);
        }
    }
    return failures;
}

int main(int argc, char **argv)
{
    int failures;
    if (argc == 3 && strcmp(argv[1], "--stream") == 0) {
        failures = train_stream(atol(argv[2]));
        if (failures < 0) {
            return 2;
        }
    } else {
        failures = train_vectors();
    }
    print_state();
    return failures > 255 ? 255 : failures;
}
""")


def firmware_train_main_c() -> str:
    return FIRMWARE_TRAIN_MAIN.substitute(train_common=TRAIN_COMMON)


def host_train_main_c() -> str:
    return HOST_TRAIN_MAIN.substitute(train_common=TRAIN_COMMON)
