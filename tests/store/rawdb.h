/* SPDX-License-Identifier: Apache-2.0 */
/* The store tests' second, independent connection: what another process sees on disk. */
#ifndef WARD_TESTS_STORE_RAWDB_H
#define WARD_TESTS_STORE_RAWDB_H

/* The first column of the first row sql gives, read-only; -1 when there is none. */
long long rawdb_count(const char *path, const char *sql);
/* Run sql read-write (a hand edit, a simulated old file); bails on failure. */
void rawdb_exec(const char *path, const char *sql);

#endif
