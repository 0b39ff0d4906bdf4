/* Minimal Cortex-M start-up for the kernel self-test firmware (tests only): vector table,
 * .data copy, .bss zeroing, CP10/CP11 access (the FPU, and MVE on the M55, for hard-float
 * builds; a write nothing reads on cores without them), then exit(main()) through newlib's
 * semihosting (rdimon), which makes main's return value QEMU's exit status. Any fault
 * exits with 99. */
#include <stdint.h>

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
int main(void);
void exit(int status);
void initialise_monitor_handles(void);

void _init(void) {}
void _fini(void) {}

static void fault_handler(void)
{
    exit(99);
}

void reset_handler(void)
{
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start; dst < &__bss_end;) {
        *dst++ = 0;
    }
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;  /* CPACR: CP10, CP11 full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    initialise_monitor_handles();
    exit(main());
}

__attribute__((section(".vectors"), used))
static void (*const vectors[16])(void) = {
    (void (*)(void))&__stack_top, reset_handler, fault_handler, fault_handler,
    fault_handler, fault_handler, fault_handler, 0, 0, 0, 0, fault_handler, fault_handler,
    0, fault_handler, fault_handler,
};
