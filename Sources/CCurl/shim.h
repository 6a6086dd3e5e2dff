/* libcurl for Swift. curl_easy_setopt/getinfo and friends are variadic, which Swift cannot call,
 * so each argument type gets a small typed wrapper here. Nothing else belongs in this file. */
#ifndef ROSET_CCURL_SHIM_H
#define ROSET_CCURL_SHIM_H
#include <curl/curl.h>

typedef size_t (*roset_curl_data_fn)(char *, size_t, size_t, void *);
typedef int (*roset_curl_xferinfo_fn)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t);
typedef int (*roset_curl_seek_fn)(void *, curl_off_t, int);
typedef void (*roset_curl_lock_fn)(CURL *, curl_lock_data, curl_lock_access, void *);
typedef void (*roset_curl_unlock_fn)(CURL *, curl_lock_data, void *);

static inline CURLcode roset_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode roset_curl_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode roset_curl_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode roset_curl_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode roset_curl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode roset_curl_setopt_share(CURL *h, CURLSH *v) { return curl_easy_setopt(h, CURLOPT_SHARE, v); }
static inline CURLcode roset_curl_setopt_data_fn(CURL *h, CURLoption o, roset_curl_data_fn v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode roset_curl_setopt_xferinfo_fn(CURL *h, roset_curl_xferinfo_fn v) { return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, v); }
static inline CURLcode roset_curl_setopt_seek_fn(CURL *h, roset_curl_seek_fn v) { return curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, v); }

static inline CURLcode roset_curl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode roset_curl_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode roset_curl_getinfo_double(CURL *h, CURLINFO i, double *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode roset_curl_getinfo_string(CURL *h, CURLINFO i, char **v) { return curl_easy_getinfo(h, i, v); }

static inline CURLSHcode roset_curl_share_setopt_long(CURLSH *s, CURLSHoption o, long v) { return curl_share_setopt(s, o, v); }
static inline CURLSHcode roset_curl_share_setopt_lock(CURLSH *s, roset_curl_lock_fn v) { return curl_share_setopt(s, CURLSHOPT_LOCKFUNC, v); }
static inline CURLSHcode roset_curl_share_setopt_unlock(CURLSH *s, roset_curl_unlock_fn v) { return curl_share_setopt(s, CURLSHOPT_UNLOCKFUNC, v); }
static inline CURLSHcode roset_curl_share_setopt_userdata(CURLSH *s, void *v) { return curl_share_setopt(s, CURLSHOPT_USERDATA, v); }
#endif
