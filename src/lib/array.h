/* SPDX-License-Identifier: MIT */
/* Growing arrays of any element type, doubling from 16. */
#ifndef GPUBOX_ARRAY_H
#define GPUBOX_ARRAY_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * Make room for one more element in *array, which holds count of cap.
 * 0, or -ENOMEM with the array left as it was (the caller still frees it).
 */
static inline int array_reserve(void *array, size_t *cap, size_t count, size_t elem_size)
{
	void **p = array;
	size_t ncap;
	void *grown;

	if (count < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	grown = reallocarray(*p, ncap, elem_size);
	if (!grown)
		return -ENOMEM;
	*p = grown;
	*cap = ncap;
	return 0;
}

#define ARRAY_RESERVE(array, cap, count) \
	array_reserve(&(array), &(cap), (count), sizeof(*(array)))

/* Append a copy of s to the NULL-terminated string vector *strv of *n
 * strings; it stays NULL-terminated.  0 or -ENOMEM. */
static inline int strv_append(char ***strv, size_t *n, size_t *cap, const char *s)
{
	char *copy;

	/* Room for s and the terminating NULL. */
	if (array_reserve(strv, cap, *n + 1, sizeof(**strv)) < 0)
		return -ENOMEM;
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	(*strv)[(*n)++] = copy;
	(*strv)[*n] = NULL;
	return 0;
}

#endif
