/* Minimal Cortex-M startup for the example on QEMU's MPS2 machines (link.ld: code and constants
 * in the first region, like flash; data, bss and stack in the RAM), with newlib's semihosting
 * (link with -nostartfiles --specs=rdimon.specs). A real board's vendor startup file replaces
 * this one: shiftkit needs nothing from it. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start__[], __bss_end__[];
extern uint32_t __stack_top[];
extern int main(void);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
void Fault_Handler(void);

/* The vector table: the initial stack pointer, then the handlers (Thumb addresses). */
__attribute__((section(".vectors"), used)) const uintptr_t vectors[16] = {
    (uintptr_t)__stack_top,   (uintptr_t)Reset_Handler, (uintptr_t)Fault_Handler,
    (uintptr_t)Fault_Handler, (uintptr_t)Fault_Handler, (uintptr_t)Fault_Handler,
    (uintptr_t)Fault_Handler, 0, 0, 0, 0,
    (uintptr_t)Fault_Handler, (uintptr_t)Fault_Handler, 0,
    (uintptr_t)Fault_Handler, (uintptr_t)Fault_Handler,
};

void Reset_Handler(void) {
    uint32_t *src = __data_load, *dst = __data_start;
#if defined(__ARM_FP)
    /* CPACR: full access to CP10 and CP11 (the FPU), before any floating-point instruction. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    while (dst < __data_end) {
        *dst++ = *src++;
    }
    for (dst = __bss_start__; dst < __bss_end__; ++dst) {
        *dst = 0;
    }
    initialise_monitor_handles();
    exit(main());
}

/* Any fault or unexpected exception: stop QEMU through semihosting SYS_EXIT with a failure
 * reason (ADP_Stopped_RunTimeErrorUnknown), so a run never hangs. */
void Fault_Handler(void) {
    register uint32_t op __asm("r0") = 0x18u;
    register uint32_t reason __asm("r1") = 0x20023u;
    for (;;) {
        __asm volatile("bkpt 0xab" : : "r"(op), "r"(reason) : "memory");
    }
}
