/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>

#include "progress.h"
#include "banned.h"

void progress_say(struct progress *p, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (!p || !p->emit)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	p->emit(p, text);
}
