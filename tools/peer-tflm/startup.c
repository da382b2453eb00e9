/* Reset and SysTick for the TFLite Micro peer on QEMU mps2-an386: vector table, FPU on, .data
 * and .bss, C++ constructors, main, then exit through Arm semihosting. */
#include <stdint.h>

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
extern int main(void);
extern void (*__init_array_start[])(void), (*__init_array_end[])(void);
void *__dso_handle = 0; /* no destructors are ever run: main exits through semihosting */
void semihost_exit(int code);

volatile uint32_t systick_wraps;

void Reset_Handler(void) {
  *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
  __asm volatile("dsb\n isb");
  for (uint32_t *s = &__data_load, *d = &__data_start; d < &__data_end;) *d++ = *s++;
  for (uint32_t *d = &__bss_start; d < &__bss_end;) *d++ = 0;
  for (void (**f)(void) = __init_array_start; f < __init_array_end; f++) (*f)();
  semihost_exit(main());
}

static void Default_Handler(void) { semihost_exit(3); }
void SysTick_Handler(void) { systick_wraps++; }

__attribute__((section(".isr_vector"), used)) static void *const vectors[16] = {
    &__stack_top, Reset_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0,
    Default_Handler, SysTick_Handler,
};

static int semihost(int op, void *arg) {
  register int r0 __asm("r0") = op;
  register void *r1 __asm("r1") = arg;
  __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

/* To the host's stdout: SYS_OPEN of ":tt" in mode "w" (4) is stdout (SYS_WRITE0 and mode "a"
 * go to stderr), then SYS_WRITE to it. */
void semihost_write(const char *s) {
  static int out = -1;
  if (out < 0) {
    uintptr_t open_args[3] = {(uintptr_t)":tt", 4, 3};
    out = semihost(0x01, open_args); /* SYS_OPEN */
  }
  uintptr_t n = 0;
  while (s[n]) n++;
  uintptr_t write_args[3] = {(uintptr_t)out, (uintptr_t)s, n};
  semihost(0x05, write_args); /* SYS_WRITE */
}

void semihost_exit(int code) {
  /* SYS_EXIT: ADP_Stopped_ApplicationExit (QEMU exits 0) or ADP_Stopped_RunTimeErrorUnknown (1). */
  semihost(0x18, (void *)(uintptr_t)(code == 0 ? 0x20026 : 0x20023));
  for (;;) {}
}

/* SysTick: 24-bit down counter on the core clock (25 MHz on mps2-an386; one tick per 40
 * instructions under qemu -icount shift=0), with its interrupt counting wraps. */
void systick_start(void) {
  *(volatile uint32_t *)0xE000E014 = 0x00FFFFFF; /* RVR */
  *(volatile uint32_t *)0xE000E018 = 0;          /* CVR */
  *(volatile uint32_t *)0xE000E010 = 7;          /* CSR: core clock, interrupt, enable */
  while (*(volatile uint32_t *)0xE000E018 == 0) {} /* until the first reload */
}

uint64_t systick_ticks(void) {
  uint32_t w, v;
  do {
    w = systick_wraps;
    v = *(volatile uint32_t *)0xE000E018;
  } while (w != systick_wraps);
  return (uint64_t)w * 0x1000000u + (0x00FFFFFFu - v);
}
