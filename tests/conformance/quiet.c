/*
 * quiet: started with --solo5:quiet, the bindings print nothing of their
 * own (the test looks for "Solo5:" anywhere in the output), and they take
 * the option off the command line before the application sees it.
 */
#include "conformance.h"

int solo5_app_main(const struct solo5_start_info *si)
{
    banner("quiet");
    if (si->cmdline[0] != '\0') {
        say("command line: '");
        say(si->cmdline);
        say("'\n");
        return failed("the command line is not empty once the log option is gone");
    }
    say("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
