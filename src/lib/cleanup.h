/* SPDX-License-Identifier: MIT */
/*
 * Automatic cleanup, in the manner of LXC's memory_utils.h: a variable
 * declared with one of these attributes is released when it goes out of
 * scope.  Every release function accepts "nothing to release" (NULL, a
 * negative descriptor) so a variable may be handed on with move_ptr() or
 * move_fd() and the cleanup then does nothing.
 */
#ifndef GPUBOX_CLEANUP_H
#define GPUBOX_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <dirent.h>
#include <jansson.h>

static inline void cleanup_freep(void *p)
{
	free(*(void **)p);
}

static inline void cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void cleanup_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

static inline void cleanup_closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static inline void cleanup_json_decrefp(json_t **j)
{
	json_decref(*j);
}

static inline void cleanup_strvp(char ***strv)
{
	if (!*strv)
		return;
	for (char **s = *strv; *s; s++)
		free(*s);
	free(*strv);
}

#define __do_free        __attribute__((cleanup(cleanup_freep)))
#define __do_close       __attribute__((cleanup(cleanup_closep)))
#define __do_fclose      __attribute__((cleanup(cleanup_fclosep)))
#define __do_closedir    __attribute__((cleanup(cleanup_closedirp)))
#define __do_json        __attribute__((cleanup(cleanup_json_decrefp)))
#define __do_strv        __attribute__((cleanup(cleanup_strvp)))

/* Hand a pointer on: returns it and leaves NULL behind. */
#define move_ptr(p)                          \
	({                                   \
		__typeof__(p) moved_ = (p);  \
		(p) = NULL;                  \
		moved_;                      \
	})

/* Hand a descriptor on: returns it and leaves -EBADF behind. */
#define move_fd(fd)                          \
	({                                   \
		int moved_ = (fd);           \
		(fd) = -EBADF;               \
		moved_;                      \
	})

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
