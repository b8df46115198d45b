/*
 * net_mtu: the guest is told its network device's MTU, the tap's, which
 * the test sets to 9000; it prints it with its MAC address.
 */
#include "conformance.h"

int solo5_app_main(const struct solo5_start_info *si __attribute__((unused)))
{
    static const char hex[] = "0123456789abcdef";
    solo5_handle_t h;
    struct solo5_net_info info;
    char mac[3 * SOLO5_NET_ALEN];

    banner("net_mtu");
    if (solo5_net_acquire("service0", &h, &info) != SOLO5_R_OK)
        return failed("cannot acquire network device 'service0'");
    for (int i = 0; i < SOLO5_NET_ALEN; i++) {
        mac[3 * i] = hex[info.mac_address[i] >> 4];
        mac[3 * i + 1] = hex[info.mac_address[i] & 0xf];
        mac[3 * i + 2] = i + 1 < SOLO5_NET_ALEN ? ':' : '\0';
    }
    say("MAC is ");
    say(mac);
    say("\nMTU is ");
    say_unsigned(info.mtu);
    say("\n");
    say("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
