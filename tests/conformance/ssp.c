/*
 * ssp: a stack buffer overrun that reaches the canary ends the guest with
 * an abort when the function returns. The toolchain must build guests with
 * the stack protector (and a global guard, as TLS is not set up), as
 * Solo5's does; this file refuses to compile otherwise.
 */
#include "conformance.h"

#if !defined(__SSP__) && !defined(__SSP_STRONG__) && !defined(__SSP_ALL__) && \
    !defined(__SSP_EXPLICIT__)
#error "the toolchain must compile guests with the stack protector"
#endif

/* Read at run time, so the compiler cannot see the overrun coming. */
static volatile size_t overrun = 64;

__attribute__((noinline)) static void fill(char *to, size_t n)
{
    volatile char *p = to;

    for (size_t i = 0; i < n; i++)
        p[i] = 'x';
}

__attribute__((noinline)) static int smash(void)
{
    char buffer[16];

    fill(buffer, overrun);
    return buffer[0];
}

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    banner("ssp");
    smash();
    return failed("the overrun went unnoticed");
}
