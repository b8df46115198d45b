/*
 * time: the monotonic clock advances; solo5_yield with a deadline that has
 * passed returns at once; a yield until one second later (no device is
 * attached, so nothing ends it early) lasts one second within 0.2 s, as
 * measured by both clocks; the wall clock is past 2017-01-01.
 *
 * Command line: the number of one-second sleeps (upstream's case: 5, the
 * default).
 */
#include "conformance.h"

#define SLACK (NSEC_PER_SEC / 5)
#define START_OF_2017 1483228800ULL

static bool within_slack(solo5_time_t took)
{
    return took + SLACK >= NSEC_PER_SEC && took <= NSEC_PER_SEC + SLACK;
}

int solo5_app_main(const struct solo5_start_info *si)
{
    const char *arg = si->cmdline;
    uint64_t sleeps = 5;
    solo5_time_t before, after;
    bool ok = true;

    banner("time");
    if (*arg != '\0' && (!take_unsigned(&arg, &sleeps) || *arg != '\0'))
        return failed("usage: time [SLEEPS]");

    before = solo5_clock_monotonic();
    after = before;
    for (int i = 0; i < 1000 && after == before; i++)
        after = solo5_clock_monotonic();
    if (after <= before)
        return failed("the monotonic clock does not advance");

    before = solo5_clock_monotonic();
    solo5_yield(before - 1, NULL);
    after = solo5_clock_monotonic();
    say("yield to a past deadline took ");
    say_unsigned(after - before);
    say(" ns\n");
    if (after - before > SLACK)
        return failed("a yield to a past deadline waited");

    for (uint64_t i = 1; i <= sleeps; i++) {
        solo5_time_t wall_before = solo5_clock_wall();
        before = solo5_clock_monotonic();
        solo5_yield(before + NSEC_PER_SEC, NULL);
        after = solo5_clock_monotonic();
        solo5_time_t wall_after = solo5_clock_wall();

        say("sleep ");
        say_unsigned(i);
        say(": ");
        say_unsigned(after - before);
        say(" ns monotonic, ");
        say_unsigned(wall_after - wall_before);
        say(" ns wall\n");
        if (after < before || !within_slack(after - before)) {
            say("  monotonic time is off by more than 0.2 s\n");
            ok = false;
        }
        if (wall_after < wall_before ||
            !within_slack(wall_after - wall_before)) {
            say("  wall time is off by more than 0.2 s\n");
            ok = false;
        }
    }
    if (!ok)
        return failed("a sleep was too short or too long");

    solo5_time_t wall = solo5_clock_wall();
    say("wall clock: ");
    say_unsigned(wall / NSEC_PER_SEC);
    say(" s since 1970\n");
    if (wall < START_OF_2017 * NSEC_PER_SEC)
        return failed("the wall clock is before 2017");

    say("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
