/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A wall clock a test can set, as NTP or an operator sets the machine's. Linked into a
 * test program, clockstep.c replaces gettimeofday(), time() and clock_gettime() for the
 * whole process, libraries included (libev reads the wall clock through gettimeofday):
 * the wall clocks read the real time plus an offset; the monotonic clocks are left alone,
 * as the kernel leaves them.
 */
#ifndef WARD_TESTS_CLOCKSTEP_H
#define WARD_TESTS_CLOCKSTEP_H

/* Move the wall clock by seconds (whole seconds; negative sets it back). */
void clockstep_by(long seconds);

#endif
