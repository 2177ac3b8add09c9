/*
 * The monotonic clock every safety decision reads.
 *
 * Leases, heartbeat send times and the coordinator's proof that it still
 * leads are compared across a stall: a process paused by SIGSTOP, or a loop
 * busy for a while, must see the time that really passed. libuv's uv_now()
 * is the time cached when the loop last woke, so a request that waited in a
 * socket buffer during a stall would be judged against the time from before
 * it. These helpers read the clock itself, every call (docs/safety.md).
 */
#ifndef NARF_CLOCK_H
#define NARF_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC (the clock uv_hrtime() reads), fresh. */
static inline uint64_t narf_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif /* NARF_CLOCK_H */
