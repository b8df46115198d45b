/*
 * zeropage: the first page of guest memory is not mapped, so a store just
 * above address 0 is a page fault that ends the guest.
 */
#include "conformance.h"

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    /* Address 8, not 0, so the compiler does not turn it into a trap. */
    uint64_t *volatile target = (uint64_t *)8;

    banner("zeropage");
    *target = 1;
    return failed("the store to address 8 returned");
}
