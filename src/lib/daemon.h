/* SPDX-License-Identifier: MIT */
/*
 * Going to the background the classic way (fork, setsid, fork, /dev/null)
 * while the starting process waits: it exits with the status the daemon
 * reports once it serves, or fails to, so that "gpuboxd" and "gpubox-hub"
 * in a shell or an init script fail when the daemon does.
 */
#ifndef GPUBOX_DAEMON_H
#define GPUBOX_DAEMON_H

/* In the daemon: *ready_fd is where to report (daemon_ready). */
int daemon_detach(int *ready_fd);
/* Report the start's exit status (0: serving) to the waiting process;
 * does nothing when there is none (in the foreground) or twice. */
void daemon_ready(int *ready_fd, unsigned char status);

#endif
