/*
 * tls: thread-local storage as the API lays it out. Two TLS blocks of
 * solo5_tls_size() bytes are made at the start of the heap the guest was
 * given, with solo5_tls_init; switching the TLS base
 * between them switches which copy of each thread-local variable the code
 * sees, and each fresh block starts with the initial values: zero for the
 * .tbss variable, its initialiser for the .tdata one.
 */
#include "conformance.h"

#define TDATA_VALUE 0x7e57da7aULL
#define BLOCK_ALIGN 64

static __thread volatile uint64_t counter;                  /* .tbss */
static __thread volatile uint64_t preset = TDATA_VALUE;     /* .tdata */

static uintptr_t blocks[2];

__attribute__((noinline)) static uint64_t read_counter(void)
{
    return counter;
}

__attribute__((noinline)) static uint64_t read_preset(void)
{
    return preset;
}

__attribute__((noinline)) static void write_both(uint64_t c, uint64_t p)
{
    counter = c;
    preset = p;
}

static bool use_block(int which)
{
    return solo5_set_tls_base(solo5_tls_tp_offset(blocks[which])) ==
           SOLO5_R_OK;
}

int solo5_app_main(const struct solo5_start_info *si)
{
    const size_t size = solo5_tls_size();
    const size_t stride = (size + BLOCK_ALIGN - 1) & ~(size_t)(BLOCK_ALIGN - 1);
    const uintptr_t first =
        (si->heap_start + BLOCK_ALIGN - 1) & ~(uintptr_t)(BLOCK_ALIGN - 1);

    banner("tls");
    say("TLS block size: ");
    say_unsigned(size);
    say("\n");
    if (size == 0 || first - si->heap_start + 2 * stride > si->heap_size / 2)
        return failed("no room for two TLS blocks in the heap");
    for (int i = 0; i < 2; i++) {
        blocks[i] = first + (uintptr_t)i * stride;
        if (solo5_tls_init(blocks[i]) != SOLO5_R_OK)
            return failed("solo5_tls_init");
    }

    if (!use_block(0))
        return failed("solo5_set_tls_base (first block)");
    if (read_counter() != 0 || read_preset() != TDATA_VALUE)
        return failed("the first block does not start with the initial values");
    write_both(1, 101);

    if (!use_block(1))
        return failed("solo5_set_tls_base (second block)");
    if (read_counter() != 0 || read_preset() != TDATA_VALUE)
        return failed("the second block does not start with the initial values");
    write_both(2, 202);

    if (!use_block(0))
        return failed("solo5_set_tls_base (back to the first block)");
    if (read_counter() != 1 || read_preset() != 101)
        return failed("the first block lost its values");
    if (!use_block(1))
        return failed("solo5_set_tls_base (back to the second block)");
    if (read_counter() != 2 || read_preset() != 202)
        return failed("the second block lost its values");

    say("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
