/* SPDX-License-Identifier: MIT */
/*
 * What every HTTP request of the agent's (the hub's sync, the webhook)
 * sets on its libcurl handle, so that none forgets one.
 */
#ifndef GPUBOX_AGENT_CURLDEFAULTS_H
#define GPUBOX_AGENT_CURLDEFAULTS_H

#include <curl/curl.h>

/* http and https only, no redirect followed, the peer's TLS certificate
 * and name verified, timeout_s for the connection and for the whole, no
 * signals (the agent has threads), gpuboxd's User-Agent, and on_progress
 * asked as it goes (non-zero: abort, as when the agent stops). */
static inline void curl_set_defaults(CURL *c, long timeout_s, curl_xferinfo_callback on_progress,
				     void *data)
{
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout_s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "gpuboxd/" GPUBOX_VERSION);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, data);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
}

#endif
