/*
 * hello: the guest starts, writes to the console and sees its command
 * line exactly as the tender was given it.
 */
#include "conformance.h"

int solo5_app_main(const struct solo5_start_info *si)
{
    banner("hello");
    say("Hello, World\n");
    say("Command line is: '");
    say(si->cmdline);
    say("'\n");
    if (!text_equal(si->cmdline, "Hello_Solo5"))
        return failed("the command line is not Hello_Solo5");
    say("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
