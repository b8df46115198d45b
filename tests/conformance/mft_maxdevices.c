/*
 * mft_maxdevices: a manifest with the most devices it can hold (63 block
 * devices, storage0 to storage62, one 4 KiB image each) is accepted by the
 * tender, and the guest can acquire its first and last device. It acquires
 * every one, in fact, and checks that each has its own handle.
 */
#include "conformance.h"

#define DEVICES 63

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    solo5_handle_set_t seen = 0;

    banner("mft_maxdevices");
    for (int n = 0; n < DEVICES; n++) {
        char name[16] = "storage";
        size_t at = text_length(name);
        solo5_handle_t h;
        struct solo5_block_info info;

        if (n >= 10)
            name[at++] = (char)('0' + n / 10);
        name[at++] = (char)('0' + n % 10);
        name[at] = '\0';
        if (solo5_block_acquire(name, &h, &info) != SOLO5_R_OK) {
            say(name);
            return failed(": cannot acquire the device");
        }
        if (info.capacity != 4096 || info.block_size != 512) {
            say(name);
            return failed(": not a 4 KiB device of 512-byte blocks");
        }
        if (h >= 64 || (seen & (1ULL << h)) != 0) {
            say(name);
            return failed(": its handle is out of range or taken");
        }
        seen |= 1ULL << h;
    }
    say("acquired storage0 to storage62\n");
    say("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
