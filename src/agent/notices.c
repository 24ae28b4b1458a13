/* SPDX-License-Identifier: MIT */
/*
 * What the agent has to tell a member, shown once, on the member's next
 * gpubox command: control.c adds the member's notices to the reply of any
 * request they make (on the host or inside their container) and the CLI
 * prints them on stderr.
 *
 * A notice has a key ("idle:2" for GPU 2's idle time): a newer notice
 * with the same key replaces the older, and whoever posted it withdraws
 * it once it no longer holds (the GPU is in use again), so that a member
 * who comes back late is not told of what has passed.  The list is
 * bounded: a member who never comes back keeps only the newest
 * NOTICES_PER_MEMBER, and all members together NOTICES_MAX.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "notify.h"
#include "array.h"
#include "banned.h"

#define NOTICES_PER_MEMBER 8
#define NOTICES_MAX 1024

struct notice {
	char member[MEMBER_NAME_SIZE];
	char key[NOTICE_KEY_MAX];
	char text[NOTICE_TEXT_MAX];
};

/* In the order they were posted. */
struct notices {
	pthread_mutex_t lock;
	struct notice *list;
	size_t n, cap;
};

int notices_new(struct notices **out)
{
	struct notices *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	pthread_mutex_init(&b->lock, NULL);
	*out = b;
	return 0;
}

void notices_free(struct notices *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b->list);
	free(b);
}

static void notices_remove_at(struct notices *b, size_t i)
{
	memmove(&b->list[i], &b->list[i + 1], (b->n - i - 1) * sizeof(*b->list));
	b->n--;
}

/* Under the lock: remove the member's notices with key (NULL: any), the
 * oldest first, until at most keep of the member's are left. */
static void notices_drop(struct notices *b, const char *member, const char *key, size_t keep)
{
	size_t count = 0;

	for (size_t i = 0; i < b->n; i++)
		count += strcmp(b->list[i].member, member) == 0 &&
			 (!key || strcmp(b->list[i].key, key) == 0);
	for (size_t i = 0; i < b->n && count > keep;) {
		if (strcmp(b->list[i].member, member) == 0 && (!key || strcmp(b->list[i].key, key) == 0)) {
			notices_remove_at(b, i);
			count--;
		} else {
			i++;
		}
	}
}

void notices_post(struct notices *b, const char *member, const char *key, const char *text)
{
	struct notice *n;

	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	notices_drop(b, member, key, 0);
	notices_drop(b, member, NULL, NOTICES_PER_MEMBER - 1);
	if (b->n == NOTICES_MAX)
		notices_remove_at(b, 0);
	if (ARRAY_RESERVE(b->list, b->cap, b->n) == 0) {
		n = &b->list[b->n++];
		snprintf(n->member, sizeof(n->member), "%s", member);
		snprintf(n->key, sizeof(n->key), "%s", key);
		notify_plain_text(n->text, sizeof(n->text), text);
	}
	pthread_mutex_unlock(&b->lock);
}

void notices_withdraw(struct notices *b, const char *member, const char *key)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	notices_drop(b, member, key, 0);
	pthread_mutex_unlock(&b->lock);
}

json_t *notices_take(struct notices *b, const char *member)
{
	json_t *texts = NULL;

	if (!b)
		return NULL;
	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < b->n;) {
		if (strcmp(b->list[i].member, member) != 0) {
			i++;
			continue;
		}
		if (!texts)
			texts = json_array();
		json_array_append_new(texts, json_string(b->list[i].text));
		notices_remove_at(b, i);
	}
	pthread_mutex_unlock(&b->lock);
	return texts;
}
