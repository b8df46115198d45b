/*
 * exception: a store to an address no page table maps (16 GiB, beyond the
 * 4 GiB that guest page tables can ever cover) is a page fault that ends
 * the guest.
 */
#include "conformance.h"

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    /* Through a volatile pointer, so the compiler keeps the store. */
    uint64_t *volatile target = (uint64_t *)0x400000000ULL;

    banner("exception");
    *target = 1;
    return failed("the store to 16 GiB returned");
}
