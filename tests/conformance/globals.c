/*
 * globals: initialised globals (.data) start with their values and are
 * writable, zero-initialised ones (.bss) start at zero. The word the case
 * prints when it passes is itself a global the guest rewrites: it starts in
 * lower case.
 */
#include "conformance.h"

char word[] = "success\n";
uint64_t answer = 42;
uint32_t ledger[3] = {7, 11, 13};
uint64_t blank[64];

/* Out of line, so the compiler cannot fold the stores into constants. */
__attribute__((noinline)) static void shout(char *s)
{
    for (; *s != '\0'; s++)
        if (*s >= 'a' && *s <= 'z')
            *s = (char)(*s - 'a' + 'A');
}

__attribute__((noinline)) static void touch(void)
{
    answer += 1000;
    for (int i = 0; i < 3; i++)
        ledger[i] *= 2;
    blank[63] = answer;
}

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    banner("globals");
    if (answer != 42 || ledger[0] != 7 || ledger[1] != 11 || ledger[2] != 13)
        return failed("an initialised global does not hold its value");
    for (int i = 0; i < 64; i++)
        if (blank[i] != 0)
            return failed("a zero-initialised global is not zero");
    touch();
    if (answer != 1042 || ledger[0] != 14 || ledger[1] != 22 ||
        ledger[2] != 26 || blank[63] != 1042)
        return failed("a store to a global did not stick");
    shout(word);
    say(word);
    return SOLO5_EXIT_SUCCESS;
}
