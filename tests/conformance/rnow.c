/*
 * rnow: read-only data is not writable. Upstream runs this case on OpenBSD
 * only; on Linux the tender maps .rodata read-only on the host too, so the
 * store ends the tender with a translation fault, as xnow does.
 */
#include "conformance.h"

const uint64_t constant = 0x600dc0de;

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    uint64_t *volatile target = (uint64_t *)&constant;

    banner("rnow");
    *target = 0;
    return failed("the store into .rodata returned");
}
