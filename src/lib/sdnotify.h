/* SPDX-License-Identifier: MIT */
/*
 * systemd's readiness protocol (sd_notify(3)), the few lines of it the
 * daemons need, without linking libsystemd: under Type=notify, systemd
 * names a Unix datagram socket in $NOTIFY_SOCKET (a path, or an abstract
 * name written with a leading '@'), and the service sends "READY=1" there
 * once it serves.  Without the variable every call does nothing, so the
 * same binary runs under any init, or none.
 */
#ifndef GPUBOX_SDNOTIFY_H
#define GPUBOX_SDNOTIFY_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

/*
 * The address named by a $NOTIFY_SOCKET value: an absolute path, or
 * "@name" for the abstract name "\0name".  0, or -EINVAL for anything
 * else (empty, relative, too long for sun_path).
 */
int sdnotify_parse_address(const char *value, struct sockaddr_un *addr, socklen_t *len);

/*
 * Take $NOTIFY_SOCKET out of the environment, keeping its value for
 * sdnotify_send(): what the daemon starts (containers, helpers) must not
 * inherit it.  Call once at start-up, before any thread runs (unsetenv is
 * not thread-safe).
 */
void sdnotify_take_socket(void);

/*
 * Send state ("READY=1", "STOPPING=1") to the socket taken above.  0 when
 * sent or when there is no socket to send to; a negative errno (already
 * logged as a warning) when the send failed.
 */
int sdnotify_send(const char *state);

#endif
