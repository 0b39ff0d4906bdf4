/* QEMU TCG plugin: exact instruction counts between marker calls.
 *
 * Every guest instruction adds 1 to a counter (an inline add: no helper call, so the
 * count is exact and the slowdown small). When the instruction at the marker address
 * (edgeq_layer_mark's entry) executes, the counter's value before it is appended to the
 * output file, one decimal line per call; the last line is the total at exit.
 * Arguments: mark=<hex address> out=<file> [pcs=<file>].
 * With pcs=<file>, each instruction address also gets its own inline counter, and at every
 * mark (and at exit) the addresses executed since the previous mark are appended to that
 * file as "<hex address> <count>" lines after a "mark <n>" line: a per-instruction profile
 * of each interval (benchmarks/mcu_speed.py reads it for the instruction mix and the code
 * each kernel runs). The global counter is the same with or without it.
 * Build: gcc -shared -fPIC -O2 insn_count.c -o insn_count.so (host gcc). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_api.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

static uint64_t insn_count;
static uint64_t mark_addr = UINT64_MAX;
static FILE *out;

/* The per-address profile (pcs=): open addressing on the guest address. Counters never
 * move (the inline adds hold pointers to them), so the table has a fixed capacity. */
#define PC_SLOTS (1u << 18)
static FILE *pcs_out;
static uint64_t *pc_addr;   /* guest address + 1 (0 = empty slot) */
static uint64_t *pc_count;
static uint64_t n_marks;

static uint64_t *pc_counter(uint64_t vaddr)
{
    uint64_t i = (vaddr * 0x9E3779B97F4A7C15ull) >> 46, tries;
    for (tries = 0; tries < PC_SLOTS; tries++, i = (i + 1) & (PC_SLOTS - 1)) {
        if (pc_addr[i] == vaddr + 1) {
            return &pc_count[i];
        }
        if (pc_addr[i] == 0) {
            pc_addr[i] = vaddr + 1;
            return &pc_count[i];
        }
    }
    fprintf(stderr, "insn_count: more than %u instruction addresses\n", PC_SLOTS);
    exit(1);
}

static void dump_pcs(void)
{
    uint32_t i;
    fprintf(pcs_out, "mark %" PRIu64 "\n", n_marks++);
    for (i = 0; i < PC_SLOTS; i++) {
        if (pc_count[i]) {
            fprintf(pcs_out, "%" PRIx64 " %" PRIu64 "\n", pc_addr[i] - 1, pc_count[i]);
            pc_count[i] = 0;
        }
    }
    fflush(pcs_out);
}

static void on_mark(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    /* flushed per line: QEMU may leave through exit() from a semihosting call */
    fprintf(out, "%" PRIu64 "\n", insn_count);
    fflush(out);
    if (pcs_out) {
        dump_pcs();
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    for (i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        if (qemu_plugin_insn_vaddr(insn) == mark_addr) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
        }
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &insn_count, 1);
        if (pcs_out) {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                       pc_counter(qemu_plugin_insn_vaddr(insn)), 1);
        }
    }
}

static void on_qemu_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    fprintf(out, "total %" PRIu64 "\n", insn_count);
    fclose(out);
    if (pcs_out) {
        dump_pcs();
        fclose(pcs_out);
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *path = NULL, *pcs_path = NULL;
    int i;
    (void)info;
    for (i = 0; i < argc; i++) {
        if (strncmp(argv[i], "mark=", 5) == 0) {
            mark_addr = strtoull(argv[i] + 5, NULL, 16);
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else if (strncmp(argv[i], "pcs=", 4) == 0) {
            pcs_path = argv[i] + 4;
        }
    }
    out = path ? fopen(path, "w") : NULL;
    if (out == NULL) {
        fprintf(stderr, "insn_count: give out=<file> (writable)\n");
        return -1;
    }
    if (pcs_path) {
        pcs_out = fopen(pcs_path, "w");
        pc_addr = calloc(PC_SLOTS, sizeof *pc_addr);
        pc_count = calloc(PC_SLOTS, sizeof *pc_count);
        if (pcs_out == NULL || pc_addr == NULL || pc_count == NULL) {
            fprintf(stderr, "insn_count: cannot open pcs=%s or allocate its table\n", pcs_path);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
    return 0;
}
