/*
 * The guest of tests/install.rs: a C unikernel (Solo5's API, built by
 * scripts/hvt-cc) with a network device "service" and a block device whose
 * name the build gives (BLOCK_NAME), as the unikernels urunc and Albatross
 * run. It prints what the tender told it about both devices, writes its
 * command line's first word into block 0, reads it back, and then either
 * exits (SUCCESS) or, given "wait", sleeps until the tender is stopped.
 */
#include "solo5.h"

#ifndef BLOCK_NAME
#error "BLOCK_NAME: the manifest's block device"
#endif
#define STRING(x) #x
#define NAME(x) STRING(x)

static size_t length(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0')
        n++;
    return n;
}

static void say(const char *s)
{
    solo5_console_write(s, length(s));
}

static void say_number(uint64_t n)
{
    char digits[21];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    solo5_console_write(&digits[i], sizeof digits - i);
}

static void say_hex_byte(uint8_t b)
{
    static const char hex[] = "0123456789abcdef";
    char two[2] = { hex[b >> 4], hex[b & 15] };
    solo5_console_write(two, 2);
}

static uint8_t block[65536];

int solo5_app_main(const struct solo5_start_info *si)
{
    solo5_handle_t net, disk;
    struct solo5_net_info net_info;
    struct solo5_block_info disk_info;

    if (solo5_net_acquire("service", &net, &net_info) != SOLO5_R_OK) {
        say("FAILURE: no network device service\n");
        return SOLO5_EXIT_FAILURE;
    }
    say("net service: mac ");
    for (int i = 0; i < SOLO5_NET_ALEN; i++) {
        if (i > 0)
            say(":");
        say_hex_byte(net_info.mac_address[i]);
    }
    say(", mtu ");
    say_number(net_info.mtu);
    say("\n");

    if (solo5_block_acquire(NAME(BLOCK_NAME), &disk, &disk_info) != SOLO5_R_OK) {
        say("FAILURE: no block device " NAME(BLOCK_NAME) "\n");
        return SOLO5_EXIT_FAILURE;
    }
    say("block " NAME(BLOCK_NAME) ": capacity ");
    say_number(disk_info.capacity);
    say(", block size ");
    say_number(disk_info.block_size);
    say("\n");
    if (disk_info.block_size > sizeof block) {
        say("FAILURE: block size too large\n");
        return SOLO5_EXIT_FAILURE;
    }

    /* The first word of the command line, into block 0 and back. */
    const char *word = si->cmdline;
    size_t n = 0;
    while (word[n] != '\0' && word[n] != ' ' && n < disk_info.block_size)
        n++;
    for (size_t i = 0; i < disk_info.block_size; i++)
        block[i] = i < n ? (uint8_t)word[i] : 0;
    if (solo5_block_write(disk, 0, block, disk_info.block_size) != SOLO5_R_OK) {
        say("FAILURE: block write\n");
        return SOLO5_EXIT_FAILURE;
    }
    for (size_t i = 0; i < disk_info.block_size; i++)
        block[i] = 0xff;
    if (solo5_block_read(disk, 0, block, disk_info.block_size) != SOLO5_R_OK
        || (n > 0 && block[n - 1] != (uint8_t)word[n - 1])) {
        say("FAILURE: block read\n");
        return SOLO5_EXIT_FAILURE;
    }
    say("block 0 written\n");

    if (n == 4 && word[0] == 'w' && word[1] == 'a' && word[2] == 'i'
        && word[3] == 't') {
        say("waiting\n");
        for (;;) {
            solo5_handle_set_t ready;
            solo5_yield(solo5_clock_monotonic() + 1000000000ULL, &ready);
        }
    }
    say("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
