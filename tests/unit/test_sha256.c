/* test_sha256.c — SHA-256 against FIPS 180-4 vectors, around the padding
 * boundaries, and the digest comparison. */
#include <stdio.h>
#include <string.h>

#include "t.h"
#include "airlock/sha256.h"

static void hex(const unsigned char d[SHA256_LEN], char out[2 * SHA256_LEN + 1])
{
    for (int i = 0; i < SHA256_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void check_vector(const char *msg, size_t len, const char *want)
{
    unsigned char d[SHA256_LEN];
    char h[2 * SHA256_LEN + 1];
    sha256_digest(msg, len, d);
    hex(d, h);
    CHECK_STR(h, want);
}

static void test_vectors(void)
{
    check_vector("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_vector("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m56 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_vector(m56, strlen(m56), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_boundaries(void)
{
    char a[130];
    memset(a, 'a', sizeof a);
    /* values from sha256sum of 'a' repeated 55, 64 and 119 times */
    check_vector(a, 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    check_vector(a, 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
    check_vector(a, 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb");
}

static void test_equal(void)
{
    unsigned char x[SHA256_LEN], y[SHA256_LEN];
    sha256_digest("key-one", 7, x);
    memcpy(y, x, sizeof y);
    CHECK(sha256_equal(x, y));
    y[31] ^= 1;
    CHECK(!sha256_equal(x, y));
    y[31] ^= 1;
    y[0] ^= 0x80;
    CHECK(!sha256_equal(x, y));
}

int main(void)
{
    RUN(test_vectors);
    RUN(test_boundaries);
    RUN(test_equal);
    TEST_DONE();
}
