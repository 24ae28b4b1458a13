/* SPDX-License-Identifier: MIT */
/*
 * Progress of long work, passed down from a request to the code doing the
 * work (a template build, a snapshot, a start); NULL when nobody is
 * listening.
 */
#ifndef GPUBOX_AGENT_PROGRESS_H
#define GPUBOX_AGENT_PROGRESS_H

struct progress {
	void (*emit)(struct progress *p, const char *text);
};

__attribute__((format(printf, 2, 3)))
void progress_say(struct progress *p, const char *fmt, ...);

#endif
