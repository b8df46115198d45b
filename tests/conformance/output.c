/*
 * output: one console write of more than 4 KiB reaches the host whole and
 * in order. The text is 65 lines of 64 bytes (4160 bytes); line N reads
 * "output line NN " followed by letters, the N-th letter of the alphabet
 * first (tests/conformance.rs builds the same text to compare). The text
 * starts in the middle of a page, so the write crosses two page boundaries
 * of guest memory.
 */
#include "conformance.h"

#define LINES 65
#define LINE_LENGTH 64

static char page_pair[3 * 4096] __attribute__((aligned(4096)));

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    char *text = &page_pair[2048];
    char *at = text;

    banner("output");
    for (int line = 0; line < LINES; line++) {
        const char *head = "output line ";
        char *end = at + LINE_LENGTH - 1;

        while (*head != '\0')
            *at++ = *head++;
        *at++ = (char)('0' + line / 10);
        *at++ = (char)('0' + line % 10);
        *at++ = ' ';
        for (int letter = line; at < end; letter++)
            *at++ = (char)('a' + letter % 26);
        *at++ = '\n';
    }
    solo5_console_write(text, (size_t)(at - text));
    return SOLO5_EXIT_SUCCESS;
}
