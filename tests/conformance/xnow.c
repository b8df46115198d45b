/*
 * xnow: guest code is not writable. The tender maps text read-only on the
 * host, so the store ends the tender with a translation fault.
 */
#include "conformance.h"

__attribute__((noinline)) void victim(void)
{
    __asm__ __volatile__("");
}

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    uint8_t *volatile target = (uint8_t *)victim;

    banner("xnow");
    *target = 0xc3;
    return failed("the store into .text returned");
}
