/* SPDX-License-Identifier: MIT */
/*
 * The Debian mirror a template is built from, read from the host's apt
 * sources (used by template.c).
 */
#ifndef GPUBOX_AGENT_APTSOURCES_H
#define GPUBOX_AGENT_APTSOURCES_H

#include <stdbool.h>
#include <stddef.h>

/* ---- aptsources.c: the Debian mirror, from the host's apt sources ------- */

#define APTSOURCES_URI_MAX 1024

enum aptsources_format {
	APTSOURCES_AUTO,           /* deb822 if the first field line looks like "Key: value" */
	APTSOURCES_ONE_LINE,       /* sources.list, *.list */
	APTSOURCES_DEB822,         /* *.sources */
};

/* Parse one sources file's text (one-line or deb822 format) and return the
 * URI of the first Debian archive entry: type "deb", enabled, a plain suite
 * (not -security, -updates, -backports, -proposed), an http://, https:// or
 * file:/ URI.  -ENOENT if there is none, -ENAMETOOLONG if it does not fit. */
int aptsources_parse_mirror(const char *text, size_t len, char *uri, size_t urilen);
int aptsources_parse(const char *text, size_t len, enum aptsources_format format,
		     char *uri, size_t urilen);
/* root (NULL or "/": the host) + /etc/apt/sources.list, then
 * the *.list and *.sources files of /etc/apt/sources.list.d, sorted. */
int aptsources_find_mirror(const char *root, char *uri, size_t urilen);
/* An http://, https:// or file:/ URI shorter than APTSOURCES_URI_MAX, of
 * letters, digits and -._~:/@%+,=[] only: safe as one argument. */
bool aptsources_uri_is_valid(const char *uri);

#endif
