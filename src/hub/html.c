/* SPDX-License-Identifier: MIT */
/*
 * HTML output for the hub's pages: an escaping printf and the page
 * skeleton.  Every value that reaches a page (names, comments of keys,
 * server names, anything a member or the directory chose) goes through
 * html_escape(), so that no value can ever become markup.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "html.h"
#include "strutil.h"
#include "banned.h"

void html_escape(FILE *out, const char *s)
{
	if (!s)
		return;
	for (; *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&#39;", out);
			break;
		default:
			fputc(*s, out);
		}
	}
}

/* One conversion at *fmt (just after '%'); returns where the format goes on. */
static const char *html_convert(FILE *out, const char *fmt, va_list *ap)
{
	if (strncmp(fmt, "lld", 3) == 0) {
		fprintf(out, "%lld", va_arg(*ap, long long));
		return fmt + 3;
	}
	if (strncmp(fmt, "llu", 3) == 0) {
		fprintf(out, "%llu", va_arg(*ap, unsigned long long));
		return fmt + 3;
	}
	if (strncmp(fmt, "ld", 2) == 0) {
		fprintf(out, "%ld", va_arg(*ap, long));
		return fmt + 2;
	}
	if (strncmp(fmt, "lu", 2) == 0) {
		fprintf(out, "%lu", va_arg(*ap, unsigned long));
		return fmt + 2;
	}
	if (strncmp(fmt, "zu", 2) == 0) {
		fprintf(out, "%zu", va_arg(*ap, size_t));
		return fmt + 2;
	}
	switch (*fmt) {
	case 's':
		html_escape(out, va_arg(*ap, const char *));
		return fmt + 1;
	case 'c': {
		char c[2] = { (char)va_arg(*ap, int), '\0' };

		html_escape(out, c);
		return fmt + 1;
	}
	case 'd':
		fprintf(out, "%d", va_arg(*ap, int));
		return fmt + 1;
	case 'u':
		fprintf(out, "%u", va_arg(*ap, unsigned));
		return fmt + 1;
	case '%':
		fputc('%', out);
		return fmt + 1;
	case '\0':
		return fmt;
	default:
		/* Unsupported: the compiler checked the types, so stop here
		 * rather than guess how many arguments to skip. */
		return fmt + strlen(fmt);
	}
}

void html_printf(FILE *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	while (*fmt) {
		const char *pct = strchr(fmt, '%');

		if (!pct) {
			fputs(fmt, out);
			break;
		}
		fwrite(fmt, 1, (size_t)(pct - fmt), out);
		fmt = html_convert(out, pct + 1, &ap);
	}
	va_end(ap);
}

int html_begin(struct html_page *page, const char *title, const char *site, const char *head)
{
	memset(page, 0, sizeof(*page));
	page->out = open_memstream(&page->text, &page->len);
	if (!page->out)
		return -ENOMEM;
	html_printf(page->out,
		    "<!DOCTYPE html>\n"
		    "<html lang=\"en\">\n"
		    "<head>\n"
		    "<meta charset=\"utf-8\">\n"
		    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
		    "<title>%s · %s</title>\n"
		    "<link rel=\"stylesheet\" href=\"/static/style.css\">\n",
		    title, site);
	if (head)
		fputs(head, page->out);
	fputs("</head>\n<body>\n", page->out);
	return 0;
}

int html_end(struct html_page *page, char **body)
{
	FILE *out = page->out;

	fputs("</body>\n</html>\n", out);
	page->out = NULL;
	if (!memstream_close(out)) {
		html_discard(page);
		return -ENOMEM;
	}
	*body = page->text;
	page->text = NULL;
	return 0;
}

void html_discard(struct html_page *page)
{
	if (page->out)
		fclose(page->out);
	page->out = NULL;
	free(page->text);
	page->text = NULL;
}
