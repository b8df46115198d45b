/*
 * blk: the block device "storage" (a zero-filled image) as the API
 * describes it. The guest writes a pattern that depends on the block
 * number to every tenth block, then reads them all back, reads a block it
 * never wrote (zeros), writes and reads the last block, and checks that a
 * transfer past the end, of the wrong size, or at an offset that is not a
 * multiple of the block size does not succeed. It prints the capacity and
 * block size it was told, for the test to compare with the image.
 */
#include "conformance.h"

#define MAX_BLOCK 4096

static uint8_t out[2 * MAX_BLOCK];
static uint8_t in[2 * MAX_BLOCK];

static uint8_t pattern(uint64_t block, size_t i)
{
    return (uint8_t)(block * 7 + i * 3 + 1);
}

static void fill_for(uint64_t block, size_t size)
{
    for (size_t i = 0; i < size; i++)
        out[i] = pattern(block, i);
}

static bool holds(uint64_t block, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if (in[i] != pattern(block, i))
            return false;
    return true;
}

static bool refused(solo5_result_t r)
{
    return r != SOLO5_R_OK;
}

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    solo5_handle_t h;
    struct solo5_block_info info;

    banner("blk");
    if (solo5_block_acquire("storage", &h, &info) != SOLO5_R_OK)
        return failed("cannot acquire block device 'storage'");
    say("capacity ");
    say_unsigned(info.capacity);
    say(", block size ");
    say_unsigned(info.block_size);
    say("\n");

    const size_t bs = (size_t)info.block_size;
    const uint64_t blocks = info.capacity / bs;
    if (bs < 512 || bs > MAX_BLOCK || info.capacity % bs != 0 || blocks < 2)
        return failed("unexpected capacity or block size");

    for (uint64_t b = 0; b < blocks; b += 10) {
        fill_for(b, bs);
        if (solo5_block_write(h, b * bs, out, bs) != SOLO5_R_OK)
            return failed("a block write was refused");
    }
    for (uint64_t b = 0; b < blocks; b += 10) {
        if (solo5_block_read(h, b * bs, in, bs) != SOLO5_R_OK)
            return failed("a block read was refused");
        if (!holds(b, bs))
            return failed("a block read back differs from what was written");
    }

    /* Block 1 was never written: it reads as the image's zeros. */
    if (solo5_block_read(h, bs, in, bs) != SOLO5_R_OK)
        return failed("reading block 1 was refused");
    for (size_t i = 0; i < bs; i++)
        if (in[i] != 0)
            return failed("an unwritten block is not zero");

    /* The last block, written and read back. */
    const uint64_t last = blocks - 1;
    fill_for(last, bs);
    if (solo5_block_write(h, last * bs, out, bs) != SOLO5_R_OK)
        return failed("writing the last block was refused");
    if (solo5_block_read(h, last * bs, in, bs) != SOLO5_R_OK || !holds(last, bs))
        return failed("the last block does not read back");

    /* Past the end. */
    if (!refused(solo5_block_write(h, info.capacity, out, bs)) ||
        !refused(solo5_block_read(h, info.capacity, in, bs)))
        return failed("a transfer past the end succeeded");
    /* Less or more than one block. */
    if (!refused(solo5_block_write(h, 0, out, bs - 1)) ||
        !refused(solo5_block_read(h, 0, in, bs - 1)) ||
        !refused(solo5_block_write(h, 0, out, bs + 1)) ||
        !refused(solo5_block_read(h, 0, in, bs + 1)))
        return failed("a transfer of the wrong size succeeded");
    /* Not at a block boundary. */
    if (!refused(solo5_block_write(h, bs - 1, out, bs)) ||
        !refused(solo5_block_read(h, bs - 1, in, bs)) ||
        !refused(solo5_block_read(h, bs / 2, in, bs)))
        return failed("a transfer at an unaligned offset succeeded");

    /* None of the refused writes changed block 0. */
    if (solo5_block_read(h, 0, in, bs) != SOLO5_R_OK || !holds(0, bs))
        return failed("a refused write changed block 0");

    say("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
