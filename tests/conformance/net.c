/*
 * net, net_2if and net_ring: an ARP and ICMP echo responder. Network
 * device serviceN (N below NICS: 1, or 2 when built with -DNICS=2) is
 * 10.N.0.2. The guest waits in solo5_yield until a device is ready, reads
 * one frame from each ready device (a ready device that then has no frame
 * to read is an error, as is a ready set that names a handle the guest does
 * not own), answers ARP requests and echo requests for its addresses, and
 * exits with SUCCESS once it has answered COUNT echo requests in all.
 *
 * Command line: COUNT [verify]. With "verify" (net_ring) every echo
 * request must carry the payload `ping -p deadbeef` sends: the bytes de ad
 * be ef repeated, after ping's 16-byte timestamp.
 */
#include "conformance.h"

#ifndef NICS
#define NICS 1
#endif

#define ETH_HEADER 14
#define ETH_ARP 0x0806
#define ETH_IPV4 0x0800
#define ARP_FRAME (ETH_HEADER + 28)
#define IPV4_HEADER 20
#define ICMP_HEADER 8
#define PING_TIMESTAMP 16

struct nic {
    const char *name;
    uint8_t ip[4];
    solo5_handle_t handle;
    struct solo5_net_info info;
};

static struct nic nics[NICS];
static uint8_t frame[9216 + ETH_HEADER];
static const uint8_t broadcast[SOLO5_NET_ALEN] = {0xff, 0xff, 0xff,
                                                  0xff, 0xff, 0xff};
static const uint8_t ping_pattern[4] = {0xde, 0xad, 0xbe, 0xef};

static uint64_t answered;
static uint64_t arp_answered;
static uint64_t ignored;
static bool verify_payload;

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* The Internet checksum (RFC 1071) of `n` bytes: 0 over a correct header. */
static uint16_t internet_checksum(const uint8_t *p, size_t n)
{
    uint32_t sum = 0;

    for (size_t i = 0; i + 1 < n; i += 2)
        sum += get16(&p[i]);
    if (n % 2 != 0)
        sum += (uint32_t)p[n - 1] << 8;
    while (sum > 0xffff)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void say_nic(const struct nic *nic)
{
    static const char hex[] = "0123456789abcdef";
    char mac[3 * SOLO5_NET_ALEN];

    for (int i = 0; i < SOLO5_NET_ALEN; i++) {
        mac[3 * i] = hex[nic->info.mac_address[i] >> 4];
        mac[3 * i + 1] = hex[nic->info.mac_address[i] & 0xf];
        mac[3 * i + 2] = i + 1 < SOLO5_NET_ALEN ? ':' : '\0';
    }
    say(nic->name);
    say(" is 10.");
    say_unsigned(nic->ip[1]);
    say(".0.2, MAC ");
    say(mac);
    say(", MTU ");
    say_unsigned(nic->info.mtu);
    say("\n");
}

/* Turns the ARP request in `frame` into its reply; false if not ours. */
static bool answer_arp(const struct nic *nic, size_t len)
{
    uint8_t *arp = &frame[ETH_HEADER];

    if (len < ARP_FRAME || get16(&arp[0]) != 1 || get16(&arp[2]) != ETH_IPV4 ||
        arp[4] != SOLO5_NET_ALEN || arp[5] != 4 || get16(&arp[6]) != 1 ||
        !bytes_equal(&arp[24], nic->ip, 4))
        return false;
    put16(&arp[6], 2);
    bytes_copy(&arp[18], &arp[8], SOLO5_NET_ALEN + 4); /* target := sender */
    bytes_copy(&arp[8], nic->info.mac_address, SOLO5_NET_ALEN);
    bytes_copy(&arp[14], nic->ip, 4);
    return true;
}

/*
 * Turns the echo request in `frame` into its reply and sets `*reply_len`;
 * false if it is not an echo request to us. A request with a bad checksum
 * or (when verifying) a wrong payload fails the case.
 */
static bool answer_echo(const struct nic *nic, size_t len, size_t *reply_len,
                        bool *corrupt)
{
    uint8_t *ip = &frame[ETH_HEADER];
    size_t total;

    if (len < ETH_HEADER + IPV4_HEADER + ICMP_HEADER || ip[0] != 0x45 ||
        ip[9] != 1 || !bytes_equal(&ip[16], nic->ip, 4))
        return false;
    total = get16(&ip[2]);
    if (total < IPV4_HEADER + ICMP_HEADER || total > len - ETH_HEADER)
        return false;
    uint8_t *icmp = &ip[IPV4_HEADER];
    size_t icmp_len = total - IPV4_HEADER;
    if (icmp[0] != 8 || icmp[1] != 0)
        return false;
    if (internet_checksum(ip, IPV4_HEADER) != 0 ||
        internet_checksum(icmp, icmp_len) != 0) {
        *corrupt = true;
        return false;
    }
    if (verify_payload) {
        const uint8_t *data = &icmp[ICMP_HEADER];
        for (size_t i = PING_TIMESTAMP; i < icmp_len - ICMP_HEADER; i++)
            if (data[i] != ping_pattern[i % 4]) {
                *corrupt = true;
                return false;
            }
    }

    uint8_t source[4];
    bytes_copy(source, &ip[12], 4);
    bytes_copy(&ip[12], nic->ip, 4);
    bytes_copy(&ip[16], source, 4);
    ip[8] = 64;
    put16(&ip[10], 0);
    put16(&ip[10], internet_checksum(ip, IPV4_HEADER));
    icmp[0] = 0;
    put16(&icmp[2], 0);
    put16(&icmp[2], internet_checksum(icmp, icmp_len));
    *reply_len = ETH_HEADER + total;
    return true;
}

/* Reads one frame from `nic` and answers it; false on an error. */
static bool serve(const struct nic *nic)
{
    size_t len = 0;
    size_t reply_len = 0;
    bool corrupt = false;
    bool echo = false;

    if (solo5_net_read(nic->handle, frame, nic->info.mtu + ETH_HEADER, &len) !=
        SOLO5_R_OK) {
        say(nic->name);
        say(": ready, but the read did not return a frame\n");
        return false;
    }
    if (len < ETH_HEADER || (!bytes_equal(frame, nic->info.mac_address,
                                          SOLO5_NET_ALEN) &&
                             !bytes_equal(frame, broadcast, SOLO5_NET_ALEN))) {
        ignored++;
        return true;
    }
    switch (get16(&frame[12])) {
    case ETH_ARP:
        if (answer_arp(nic, len)) {
            reply_len = ARP_FRAME;
            arp_answered++;
        }
        break;
    case ETH_IPV4:
        echo = answer_echo(nic, len, &reply_len, &corrupt);
        break;
    default:
        break;
    }
    if (corrupt) {
        say(nic->name);
        say(": an echo request with a bad checksum or payload\n");
        return false;
    }
    if (reply_len == 0) {
        ignored++;
        return true;
    }
    /* Addressed back to the sender, from us. */
    bytes_copy(frame, &frame[SOLO5_NET_ALEN], SOLO5_NET_ALEN);
    bytes_copy(&frame[SOLO5_NET_ALEN], nic->info.mac_address, SOLO5_NET_ALEN);
    if (solo5_net_write(nic->handle, frame, reply_len) != SOLO5_R_OK) {
        say(nic->name);
        say(": a write was refused\n");
        return false;
    }
    if (echo)
        answered++;
    return true;
}

int solo5_app_main(const struct solo5_start_info *si)
{
    static const char *const names[2] = {"service0", "service1"};
    const char *arg = si->cmdline;
    const char *rest;
    uint64_t limit;
    solo5_handle_set_t ours = 0;

    banner("net");
    if (!take_unsigned(&arg, &limit) || limit == 0)
        return failed("usage: net COUNT [verify]");
    if (text_starts(arg, " verify", &rest) && *rest == '\0')
        verify_payload = true;
    else if (*arg != '\0')
        return failed("usage: net COUNT [verify]");

    for (int i = 0; i < NICS; i++) {
        struct nic *nic = &nics[i];

        nic->name = names[i];
        nic->ip[0] = 10;
        nic->ip[1] = (uint8_t)i;
        nic->ip[2] = 0;
        nic->ip[3] = 2;
        if (solo5_net_acquire(nic->name, &nic->handle, &nic->info) !=
            SOLO5_R_OK)
            return failed("cannot acquire a network device");
        if (nic->info.mtu + ETH_HEADER > sizeof frame)
            return failed("the MTU is larger than the frame buffer");
        if (nic->handle >= 64)
            return failed("a handle does not fit a handle set");
        ours |= 1ULL << nic->handle;
        say_nic(nic);
    }
    say("answering ");
    say_unsigned(limit);
    say(verify_payload ? " echo requests, checking their payload\n"
                       : " echo requests\n");

    while (answered < limit) {
        solo5_handle_set_t ready = 0;

        solo5_yield(solo5_clock_monotonic() + NSEC_PER_SEC, &ready);
        if ((ready & ~ours) != 0)
            return failed("the ready set names a handle that is not ours");
        for (int i = 0; i < NICS; i++)
            if ((ready & (1ULL << nics[i].handle)) != 0 && !serve(&nics[i]))
                return failed("serving a frame");
    }
    say("answered ");
    say_unsigned(answered);
    say(" echo requests and ");
    say_unsigned(arp_answered);
    say(" ARP requests, ignored ");
    say_unsigned(ignored);
    say(" frames\n");
    say("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
