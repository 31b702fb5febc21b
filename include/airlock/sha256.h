/* sha256.h — SHA-256 (FIPS 180-4) for client keys, and a constant-time
 * comparison of digests. Small and dependency-free on purpose. */
#ifndef AIRLOCK_SHA256_H
#define AIRLOCK_SHA256_H
#include <stddef.h>

#define SHA256_LEN 32

/* Hashes len bytes of data into out. */
void sha256_digest(const void *data, size_t len, unsigned char out[SHA256_LEN]);

/* 1 when a and b are equal; time depends only on SHA256_LEN. */
int sha256_equal(const unsigned char a[SHA256_LEN], const unsigned char b[SHA256_LEN]);

#endif
