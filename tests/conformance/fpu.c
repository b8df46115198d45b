/*
 * fpu: the guest may use SSE (CR4.OSFXSR is set): a packed multiply on four
 * floats and some scalar float and double arithmetic give exact results.
 * Built without -mgeneral-regs-only; run at CPL 3 only (at CPL 0 this
 * project's KVM host cannot run SSE, §11).
 */
#include "conformance.h"

static float lanes[4] __attribute__((aligned(16))) = {3.0f, 0.5f, -4.0f, 10.0f};

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    banner("fpu");

    /* Squares each lane in an XMM register. */
    __asm__ __volatile__("movaps %0, %%xmm2\n\t"
                         "mulps %%xmm2, %%xmm2\n\t"
                         "movaps %%xmm2, %0"
                         : "+m"(lanes)
                         :
                         : "xmm2");
    if (lanes[0] != 9.0f || lanes[1] != 0.25f || lanes[2] != 16.0f ||
        lanes[3] != 100.0f)
        return failed("mulps gave a wrong square");

    volatile float f = 2.5f;
    volatile double d = 1.0;
    f = f * 3.0f + 0.5f;
    for (int i = 0; i < 10; i++)
        d = d / 2.0;
    if (f != 8.0f || d != 1.0 / 1024.0)
        return failed("scalar floating-point arithmetic is wrong");

    say("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
