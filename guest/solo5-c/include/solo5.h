/*
 * solo5.h: Solo5's public C interface, as this project provides it.
 *
 * A C unikernel written for Solo5 compiles against this header unchanged:
 * the types, constants and functions below have Solo5's names, values and
 * meanings. They are implemented by libsolo5_hvt.a, built from the project's
 * Rust bindings (guest/solo5-c), and `scripts/hvt-cc` compiles and links a
 * program with them. The image runs at CPL 3 on `tender` and at CPL 0 on
 * upstream `solo5-hvt`.
 *
 * The application defines solo5_app_main(); the bindings call it once the
 * guest is set up, and end the guest with its return value.
 */

#ifndef SOLO5_H_INCLUDED
#define SOLO5_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What every call that can fail returns. */
typedef enum {
    SOLO5_R_OK = 0,  /* done */
    SOLO5_R_AGAIN,   /* nothing to do now; the same call may succeed later */
    SOLO5_R_EINVAL,  /* a bad argument: handle, offset, size */
    SOLO5_R_EUNSPEC  /* any other failure */
} solo5_result_t;

/* What the application is started with. */
struct solo5_start_info {
    /* The guest's arguments joined by spaces, without leading
     * --solo5:LEVEL options; NUL-terminated, read-only. */
    const char *cmdline;
    /* The free memory after the image: [heap_start, heap_start + heap_size).
     * The initial stack lives at its top end. */
    uintptr_t heap_start;
    size_t heap_size;
};

/* Defined by the application. Its return value is the exit status. */
int solo5_app_main(const struct solo5_start_info *info);

/* Exit statuses. The tender exits with the status's low byte; 255 and up
 * are Solo5's. */
#define SOLO5_EXIT_SUCCESS 0
#define SOLO5_EXIT_FAILURE 1
#define SOLO5_EXIT_ABORT 255

/* Ends the guest with `status`. */
void solo5_exit(int status) __attribute__((noreturn));
/* Ends the guest with SOLO5_EXIT_ABORT. */
void solo5_abort(void) __attribute__((noreturn));

/*
 * Thread-local storage. A TLS block holds the initial values of the
 * program's thread-locals and, after them, the thread pointer.
 *
 * solo5_tls_size(): bytes a block needs. The caller allocates it, aligned
 * to at least 16 bytes (more if a thread-local asks for it).
 * solo5_tls_tp_offset(tls): where the thread pointer of the block at `tls`
 * is: the value to give solo5_set_tls_base().
 * solo5_tls_init(tls): fills the block (initial values, zeroes, the thread
 * pointer); SOLO5_R_EINVAL for a null `tls`.
 * solo5_set_tls_base(base): makes `base` the thread pointer (the FS base).
 * The bindings start with a thread pointer of 0, so a program that uses
 * thread-locals before setting one faults.
 */
size_t solo5_tls_size(void);
uintptr_t solo5_tls_tp_offset(uintptr_t tls);
solo5_result_t solo5_tls_init(uintptr_t tls);
solo5_result_t solo5_set_tls_base(uintptr_t base);

/* Time in nanoseconds. */
typedef uint64_t solo5_time_t;

/* Nanoseconds from an arbitrary start; never goes back. */
solo5_time_t solo5_clock_monotonic(void);
/* Nanoseconds since the UNIX epoch (the host's wall clock). */
solo5_time_t solo5_clock_wall(void);

/* A device, as acquired by name, and a set of devices (bit N = handle N). */
typedef uint64_t solo5_handle_t;
typedef uint64_t solo5_handle_set_t;

/*
 * Waits until the monotonic clock reaches `deadline` or a network device
 * has a frame to read. If `ready_set` is not NULL it receives the devices
 * that are ready (0 when the deadline was reached). A deadline in the past
 * returns at once.
 */
void solo5_yield(solo5_time_t deadline, solo5_handle_set_t *ready_set);

/* Writes `size` bytes to the console; best effort. */
void solo5_console_write(const char *buf, size_t size);

/* Network devices: Ethernet frames. */
#define SOLO5_NET_ALEN 6  /* bytes of a MAC address */
#define SOLO5_NET_HLEN 14 /* bytes of an Ethernet header */

struct solo5_net_info {
    uint8_t mac_address[SOLO5_NET_ALEN];
    size_t mtu; /* payload bytes, without the Ethernet header */
};

/*
 * Acquires the network device `name` of the manifest: its handle and info.
 * SOLO5_R_EINVAL if the manifest has no such network device.
 */
solo5_result_t solo5_net_acquire(const char *name, solo5_handle_t *handle,
                                 struct solo5_net_info *info);
/* Sends one frame of `size` bytes (at most mtu + SOLO5_NET_HLEN). */
solo5_result_t solo5_net_write(solo5_handle_t handle, const uint8_t *buf,
                               size_t size);
/*
 * Receives one frame into `buf` of `size` bytes (at least mtu +
 * SOLO5_NET_HLEN); its length goes to `*read_size`. SOLO5_R_AGAIN when no
 * frame is waiting.
 */
solo5_result_t solo5_net_read(solo5_handle_t handle, uint8_t *buf,
                              size_t size, size_t *read_size);

/* Block devices: byte offsets, whole blocks. */
typedef uint64_t solo5_off_t;

struct solo5_block_info {
    solo5_off_t capacity;   /* bytes */
    solo5_off_t block_size; /* bytes per block: the unit of every transfer */
};

/*
 * Acquires the block device `name` of the manifest: its handle and info.
 * SOLO5_R_EINVAL if the manifest has no such block device.
 */
solo5_result_t solo5_block_acquire(const char *name, solo5_handle_t *handle,
                                   struct solo5_block_info *info);
/*
 * Write and read exactly one block: `offset` a multiple of the block size,
 * `size` equal to it, the block within the device; SOLO5_R_EINVAL
 * otherwise.
 */
solo5_result_t solo5_block_write(solo5_handle_t handle, solo5_off_t offset,
                                 const uint8_t *buf, size_t size);
solo5_result_t solo5_block_read(solo5_handle_t handle, solo5_off_t offset,
                                uint8_t *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* SOLO5_H_INCLUDED */
