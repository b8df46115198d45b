/*
 * What every conformance guest shares. The guests link against the Solo5
 * API and nothing else (no libc), so the few text and byte routines they
 * need live here, as static functions each guest compiles on its own.
 *
 * The loops below are plain byte loops on purpose: the guests must not
 * depend on the library providing memcpy and friends, and the CPL 0 builds
 * must not contain SSE (-mgeneral-regs-only, see tests/conformance.rs).
 */
#ifndef CONFORMANCE_H
#define CONFORMANCE_H

#include "solo5.h"

#define NSEC_PER_SEC 1000000000ULL

static inline size_t text_length(const char *s)
{
    size_t n = 0;

    while (s[n] != '\0')
        n++;
    return n;
}

static inline bool text_equal(const char *a, const char *b)
{
    while (*a != '\0' && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

/* Whether `s` begins with `prefix`; `*rest` then points past it. */
static inline bool text_starts(const char *s, const char *prefix,
                               const char **rest)
{
    while (*prefix != '\0') {
        if (*s != *prefix)
            return false;
        s++;
        prefix++;
    }
    *rest = s;
    return true;
}

static inline void say(const char *s)
{
    solo5_console_write(s, text_length(s));
}

static inline void say_unsigned(uint64_t value)
{
    char digits[24];
    size_t at = sizeof digits;

    digits[--at] = '\0';
    do {
        digits[--at] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    say(&digits[at]);
}

static inline void say_hex(uint64_t value)
{
    static const char hex[] = "0123456789abcdef";
    char digits[20];
    size_t at = sizeof digits;

    digits[--at] = '\0';
    do {
        digits[--at] = hex[value & 0xf];
        value >>= 4;
    } while (value != 0);
    digits[--at] = 'x';
    digits[--at] = '0';
    say(&digits[at]);
}

/*
 * Reads a decimal number at `*s`, moves `*s` past it and returns true, or
 * returns false if no digit is there.
 */
static inline bool take_unsigned(const char **s, uint64_t *value)
{
    const char *p = *s;
    uint64_t n = 0;

    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9') {
        n = n * 10 + (uint64_t)(*p - '0');
        p++;
    }
    *s = p;
    *value = n;
    return true;
}

static inline void bytes_copy(void *to, const void *from, size_t n)
{
    volatile uint8_t *d = to;
    const uint8_t *s = from;

    while (n-- > 0)
        *d++ = *s++;
}

static inline bool bytes_equal(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a;
    const uint8_t *y = b;

    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return false;
    return true;
}

/* A line that names the case, so a failing test's output says which. */
static inline void banner(const char *name)
{
    say("conformance: ");
    say(name);
    say("\n");
}

/* Prints why the case failed and returns the failure status. */
static inline int failed(const char *why)
{
    say("FAILURE: ");
    say(why);
    say("\n");
    return SOLO5_EXIT_FAILURE;
}

#endif
