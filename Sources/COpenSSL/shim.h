/* OpenSSL's libcrypto, for SHA-256 only (the spool's checksums). The one-shot SHA256_CTX API is a
 * plain C struct, so a Swift value holding it copies like a value; OpenSSL 3 marks it deprecated
 * in favour of EVP, which needs heap contexts, so the deprecation is suppressed here. */
#ifndef ROSET_COPENSSL_SHIM_H
#define ROSET_COPENSSL_SHIM_H
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#endif
