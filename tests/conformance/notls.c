/*
 * notls: the bindings start the guest with the FS base at 0, so a TLS
 * access before the application set up TLS (here the load a stack
 * protector with a TLS guard would make, %fs:0x28) lands in the unmapped
 * zero page and ends the guest.
 */
#include "conformance.h"

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    uint64_t value;

    banner("notls");
    __asm__ __volatile__("movq %%fs:0x28, %0" : "=r"(value));
    say_hex(value);
    return failed("the load through FS returned");
}
