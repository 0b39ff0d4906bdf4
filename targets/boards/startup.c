/* Startup for edgeq firmware on Cortex-M (M4, M7, M33, M55), C only.
 *
 * Reset_Handler: copy .data from flash, zero .bss, grant CP10/CP11 access (FPU, and MVE on
 * the M55: both are gated by those CPACR fields), paint the stack reserve with a pattern,
 * call main and exit through semihosting with main's return value as QEMU's exit status.
 * Every fault exits with status 99, so a crash is visible instead of a hang.
 */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, __StackLimit, __StackTop;
extern uint32_t end, __heap_end;  /* newlib's _sbrk grows from `end` */
extern int main(void);

#define STACK_PAINT 0xA5A5A5A5u
#define FAULT_EXIT 99
#define CPACR (*(volatile uint32_t *)0xE000ED88u)


void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);

/* Semihosting SYS_EXIT_EXTENDED (0x20): the block's second word is the exit status. */
__attribute__((noreturn)) void edgeq_exit(int status)
{
    volatile uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)status};
    register uint32_t r0 __asm__("r0") = 0x20u;
    register volatile uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}

/* newlib's exit() may call these with -nostartfiles; nothing to construct in C. */
void _init(void) {}
void _fini(void) {}

void Fault_Handler(void)
{
    edgeq_exit(FAULT_EXIT);
}

void Default_Handler(void)
{
    edgeq_exit(FAULT_EXIT);
}

/* Bytes of the stack reserve ever written: scan up from the bottom for the first word
 * that lost the paint. */
uint32_t edgeq_stack_peak(void)
{
    const uint32_t *p = &__StackLimit;
    while (p < &__StackTop && *p == STACK_PAINT) {
        p++;
    }
    return (uint32_t)((uintptr_t)&__StackTop - (uintptr_t)p);
}

/* Bytes of the heap reserve newlib's semihosting set-up used: scan down from the top
 * of the reserve for the last word that lost the paint. */
uint32_t edgeq_heap_peak(void)
{
    const uint32_t *p = &__heap_end;
    while (p > &end && p[-1] == STACK_PAINT) {
        p--;
    }
    return (uint32_t)((uintptr_t)p - (uintptr_t)&end);
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    uint32_t *sp;
    while (dst < &_edata) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss; dst++) {
        *dst = 0;
    }
    CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    /* Paint up to a margin below this frame: this loop calls nothing, so it only
     * overwrites stack no one uses yet. */
    for (dst = &end; dst < &__heap_end; dst++) {
        *dst = STACK_PAINT;
    }
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (dst = &__StackLimit; dst < sp - 16; dst++) {
        *dst = STACK_PAINT;
    }
    edgeq_exit(main());
}

/* The 16 system vectors are enough: edgeq firmware enables no peripheral interrupts. */
__attribute__((section(".isr_vector"), used))
static void (*const vector_table[16])(void) = {
    (void (*)(void))&__StackTop, /* initial SP */
    Reset_Handler,
    Default_Handler,             /* NMI */
    Fault_Handler,               /* HardFault */
    Fault_Handler,               /* MemManage */
    Fault_Handler,               /* BusFault */
    Fault_Handler,               /* UsageFault */
    Fault_Handler,               /* SecureFault (v8-M) */
    0, 0, 0,
    Default_Handler,             /* SVCall */
    Default_Handler,             /* DebugMon */
    0,
    Default_Handler,             /* PendSV */
    Default_Handler,             /* SysTick */
};
