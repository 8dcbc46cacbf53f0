/*
 * cmd-top.c - qctl top: every queue the caller may read, one line each,
 * redrawn every second like top(1); or one frame (--once, or whenever
 * standard output is not a terminal).
 *
 * Owns the frame (its columns, the rates between two snapshots) and the
 * terminal while it draws: plain ANSI sequences, no curses.  Whatever ends
 * the live view ('q', Ctrl-C, SIGTERM, SIGHUP, an error) must first give
 * the terminal back as it found it; Ctrl-Z does so too, and takes it again
 * on SIGCONT.  It only reads the daemon's list: nothing here may attach
 * to a queue.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "qctl.h"

#define INTERVAL_MS  1000       /* between frames, and --once's samples */
#define ONCE_BAR     20         /* bar width when the frame is not fitted */
#define MAX_BAR      30         /* the widest bar a wide terminal gets */
#define MIN_BAR      5          /* narrower than this, no bar at all */
#define LINE_MAX_LEN 1024       /* one row: a 255-byte name and the rest */

/* One shmq_list() and when it answered. */
struct snapshot {
	struct shmq_stat *list;
	size_t n;
	uint64_t at;            /* mono_ns() */
};

/* ------------------------------------------------------------------ */
/* Snapshots and rates                                                */

static int by_name(const void *x, const void *y)
{
	const struct shmq_stat *a = x, *b = y;

	return strcmp(a->name, b->name);
}

static void snapshot_free(struct snapshot *s)
{
	free(s->list);
	s->list = NULL;
	s->n = 0;
}

static int snapshot_take(struct snapshot *s)
{
	int rc = shmq_list(&s->list, &s->n);

	if (rc != SHMQ_OK) {
		s->list = NULL;
		s->n = 0;
		return rc;
	}
	s->at = mono_ns();
	/* The library lists by name already; sorting here keeps the frame
	 * ordered, and the lookups below right, whatever its order is. */
	if (s->n > 1)
		qsort(s->list, s->n, sizeof(s->list[0]), by_name);
	return SHMQ_OK;
}

/* The same queue in an earlier snapshot: same name and the same creation
 * time, so that a queue deleted and made again starts afresh. */
static const struct shmq_stat *snapshot_find(const struct snapshot *s,
					     const struct shmq_stat *st)
{
	const struct shmq_stat *old;

	if (s == NULL || s->n == 0)
		return NULL;
	old = bsearch(st, s->list, s->n, sizeof(s->list[0]), by_name);
	return old && old->created_ns == st->created_ns ? old : NULL;
}

/* Messages per second from one counter's two readings; "-" if there is
 * no earlier reading (or it went backwards, which a counter never does
 * for one queue). */
static const char *rate(char *buf, size_t size, uint64_t then, uint64_t now,
			double dt, int known)
{
	double r;

	if (!known || now < then || dt <= 0)
		return "-";
	r = (double)(now - then) / dt;
	if (r < 9.95)
		snprintf(buf, size, "%.1f", r);
	else if (r < 99999.5)
		snprintf(buf, size, "%.0f", r);
	else if (r < 9999.5e3)
		snprintf(buf, size, "%.0fk", r / 1e3);
	else
		snprintf(buf, size, "%.0fM", r / 1e6);
	return buf;
}

/* open, closed, closed-now or auto-closed; ",producer-lost" after it if a
 * producer died without detaching, ",deadlock" if calls blocked on it are
 * deadlocked.  One word, for awk. */
static const char *state_word(const struct shmq_stat *st, char *buf,
			      size_t size)
{
	const char *base = fields_state_name(st->state);

	if (st->state == SHMQ_STATE_CLOSED && st->auto_closed)
		base = "auto-closed";
	snprintf(buf, size, "%s%s%s", base,
		 st->producer_lost ? ",producer-lost" : "",
		 st->deadlocked ? ",deadlock" : "");
	return buf;
}

/* ------------------------------------------------------------------ */
/* The frame                                                          */

/* How the columns are laid out.  Fitted to the terminal in the live view;
 * in one frame for a script, never cut. */
struct layout {
	int width;              /* of the terminal; 0: do not cut lines */
	int name;               /* NAME's width */
	int cut_names;          /* names longer than that end in '+' */
	int bar;                /* the bar's width inside [], 0: no bar */
	int length;             /* LENGTH/CAPACITY's: the bar and the count */
	const char *length_head;
	int gap;                /* spaces between columns */
	int rate;               /* IN/S's and OUT/S's width */
};

#define LENGTH_HEAD "LENGTH/CAPACITY"
#define LENGTH_SHORT "LEN/CAP"
/* What follows LENGTH/CAPACITY up to STATE: the rates, the four counts of
 * width 4, and the gaps before each and before STATE. */
#define COUNTERS(gap, rate) (2 * ((gap) + (rate)) + 4 * ((gap) + 4) + (gap))
/* The narrowest rate that holds what rate() prints ("9999k"). */
#define RATE_NARROW 5

static int bar_part(int bar)
{
	return bar > 0 ? bar + 3 : 0;   /* "[", the bar, "] " */
}

static int max_int(int a, int b)
{
	return a > b ? a : b;
}

/* The counts, the counters and the state are never shortened: the bar
 * gives way first, then the columns close up (one space between them,
 * narrower rates, LEN/CAP), then the names are cut (down to 4 columns);
 * only a terminal narrower than that (about 50 columns) cuts lines
 * (put_line). */
static void layout_fit(struct layout *l, const struct snapshot *s,
		       int width)
{
	int names = 4, count = 0, state = 5, room;
	char buf[64];

	for (size_t i = 0; i < s->n; i++) {
		const struct shmq_stat *st = &s->list[i];
		names = max_int(names, (int)strlen(st->name));
		count = max_int(count, snprintf(buf, sizeof(buf),
						"%" PRIu64 "/%" PRIu32,
						st->messages, st->capacity));
		state = max_int(state, (int)strlen(state_word(st, buf,
							      sizeof(buf))));
	}
	l->width = width;
	l->name = names;
	l->cut_names = 0;
	l->bar = ONCE_BAR;
	l->length_head = LENGTH_HEAD;
	l->gap = 2;
	l->rate = 7;
	if (width > 0) {
		/* Room for NAME and LENGTH/CAPACITY. */
		room = width - l->gap - COUNTERS(l->gap, l->rate) - state;
		l->bar = room - names - count - 3;
		if (l->bar > MAX_BAR)
			l->bar = MAX_BAR;
		if (l->bar < MIN_BAR ||
		    room - names < (int)strlen(LENGTH_HEAD)) {
			l->bar = 0;
			if (room - names <
			    max_int(count, (int)strlen(LENGTH_HEAD))) {
				l->length_head = LENGTH_SHORT;
				l->gap = 1;
				l->rate = RATE_NARROW;
				room = width - l->gap -
				       COUNTERS(l->gap, l->rate) - state;
			}
			room -= max_int(count, (int)strlen(l->length_head));
			if (room < names) {
				l->name = max_int(room, 4);
				l->cut_names = 1;
			}
		}
	}
	l->length = max_int(bar_part(l->bar) + count,
			    (int)strlen(l->length_head));
}

/* Writes one line, cut to the terminal's width, clearing what an earlier
 * frame left to its right. */
static void put_line(const struct layout *l, const char *line)
{
	int n = (int)strlen(line);

	if (l->width > 0 && n > l->width)
		n = l->width;
	fwrite(line, 1, (size_t)n, stdout);
	fputs(l->width > 0 ? "\033[K\n" : "\n", stdout);
}

static void put_header(const struct layout *l)
{
	char line[LINE_MAX_LEN];

	int g = l->gap;

	snprintf(line, sizeof(line), "%-*s%*s%-*s%*s%*s%*s%*s%*s%*s%*s%*s"
		 "%*s%*s%*s%*s%*s%s", l->name, "NAME", g, "", l->length,
		 l->length_head, g, "", l->rate, "IN/S", g, "", l->rate,
		 "OUT/S", g, "", 4, "PROD", g, "", 4, "CONS", g, "", 4, "BPUT",
		 g, "", 4, "BGET", g, "", "STATE");
	put_line(l, line);
}

static void put_row(const struct layout *l, const struct shmq_stat *st,
		    const struct shmq_stat *old, double dt)
{
	char line[LINE_MAX_LEN], name[SHMQ_NAME_MAX_LEN + 2], bar[MAX_BAR + 8];
	char count[48], in[16], out[16], state[64];
	uint64_t k = 0;
	int g = l->gap;

	snprintf(name, sizeof(name), "%s", st->name);
	if (l->cut_names && (int)strlen(name) > l->name) {
		name[l->name - 1] = '+';
		name[l->name] = '\0';
	}
	bar[0] = '\0';
	if (l->bar > 0) {
		/* Rounded up: a queue holding anything shows a mark.  The
		 * count is the daemon's word: full, at most. */
		if (st->messages >= st->capacity)
			k = (uint64_t)l->bar;
		else
			k = (st->messages * (uint64_t)l->bar + st->capacity -
			     1) / st->capacity;
		bar[0] = '[';
		memset(bar + 1, '#', (size_t)k);
		memset(bar + 1 + k, '.', (size_t)l->bar - (size_t)k);
		strcpy(bar + 1 + l->bar, "] ");
	}
	snprintf(count, sizeof(count), "%" PRIu64 "/%" PRIu32, st->messages,
		 st->capacity);
	snprintf(line, sizeof(line), "%-*s%*s%s%-*s%*s%*s%*s%*s%*s%4" PRIu32
		 "%*s%4" PRIu32 "%*s%4" PRIu32 "%*s%4" PRIu32 "%*s%s",
		 l->name, name, g, "", bar, l->length - bar_part(l->bar),
		 count, g, "", l->rate,
		 rate(in, sizeof(in), old ? old->total_put : 0, st->total_put,
		      dt, old != NULL),
		 g, "", l->rate,
		 rate(out, sizeof(out), old ? old->total_got : 0,
		      st->total_got, dt, old != NULL),
		 g, "", st->producers, g, "", st->consumers, g, "",
		 st->put_blocked, g, "", st->get_blocked, g, "",
		 state_word(st, state, sizeof(state)));
	put_line(l, line);
}

/* The column header and one row per queue of `now`, at most `rows` of
 * them (-1: all), with rates since `then` (NULL: none yet). */
static void put_table(const struct layout *l, const struct snapshot *then,
		      const struct snapshot *now, int rows)
{
	double dt = then ? (double)(now->at - then->at) / 1e9 : 0;
	size_t shown = now->n;
	char line[64];

	put_header(l);
	if (rows >= 0 && shown > (size_t)rows) {
		shown = rows > 0 ? (size_t)rows - 1 : 0;
	}
	for (size_t i = 0; i < shown; i++)
		put_row(l, &now->list[i], snapshot_find(then, &now->list[i]),
			dt);
	if (shown < now->n) {
		snprintf(line, sizeof(line), "... %zu more", now->n - shown);
		put_line(l, line);
	}
}

/* ------------------------------------------------------------------ */
/* One frame, for scripts                                             */

/* Two snapshots INTERVAL_MS apart, so that the rates are measured, not
 * guessed; then the table, whole. */
static int top_once(const struct args *a)
{
	struct snapshot s0 = { 0 }, s1 = { 0 };
	struct layout l;
	int rc;

	if ((rc = snapshot_take(&s0)) != SHMQ_OK)
		return report_fail(a, rc);
	sleep_ms(INTERVAL_MS);
	if ((rc = snapshot_take(&s1)) != SHMQ_OK) {
		snapshot_free(&s0);
		return report_fail(a, rc);
	}
	layout_fit(&l, &s1, 0);
	put_table(&l, &s0, &s1, -1);
	snapshot_free(&s0);
	snapshot_free(&s1);
	return report_flush(a);
}

/* ------------------------------------------------------------------ */
/* The live view                                                      */

static volatile sig_atomic_t got_quit, got_winch, got_tstp;

static void on_signal(int sig)
{
	if (sig == SIGWINCH)
		got_winch = 1;
	else if (sig == SIGTSTP)
		got_tstp = 1;
	else
		got_quit = 1;
}

static const int live_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGWINCH,
				    SIGTSTP };
#define N_LIVE_SIGNALS (sizeof(live_signals) / sizeof(live_signals[0]))

struct terminal {
	int keys;               /* standard input is a terminal we set up */
	struct termios saved;
	sigset_t saved_mask;    /* the signal mask we were started with */
	sigset_t open_mask;     /* the mask to wait with: ours let in */
};

/* Keys one at a time, unechoed; Ctrl-C and Ctrl-Z still send signals.
 * A read never waits (VMIN 0): what poll saw may be gone by the read, as
 * Ctrl-C flushes the input queue, and a read that waits with the signals
 * blocked would never end.  The alternate screen keeps the user's
 * scrollback as it was. */
static void term_enter(struct terminal *t)
{
	struct termios raw;

	if (t->keys) {
		raw = t->saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout);
	fflush(stdout);
}

static void term_leave(struct terminal *t)
{
	fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	if (t->keys)
		tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
}

static void signals_catch(struct terminal *t)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block;

	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	for (size_t i = 0; i < N_LIVE_SIGNALS; i++) {
		sigaction(live_signals[i], &sa, NULL);
		sigaddset(&block, live_signals[i]);
	}
	/* They are let in only while waiting (ppoll), so a flag is never
	 * set between its test and the wait; then let in even if whoever
	 * started us left them blocked. */
	sigprocmask(SIG_BLOCK, &block, &t->saved_mask);
	t->open_mask = t->saved_mask;
	for (size_t i = 0; i < N_LIVE_SIGNALS; i++)
		sigdelset(&t->open_mask, live_signals[i]);
}

static void signals_release(const struct terminal *t)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < N_LIVE_SIGNALS; i++)
		sigaction(live_signals[i], &sa, NULL);
	sigprocmask(SIG_SETMASK, &t->saved_mask, NULL);
}

/* Ctrl-Z: the terminal goes back to the shell while we are stopped. */
static void suspend(struct terminal *t)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t tstp;

	sigemptyset(&dfl.sa_mask);
	sigemptyset(&sa.sa_mask);
	sigemptyset(&tstp);
	sigaddset(&tstp, SIGTSTP);
	term_leave(t);
	sigaction(SIGTSTP, &dfl, NULL);
	sigprocmask(SIG_UNBLOCK, &tstp, NULL);
	raise(SIGTSTP);         /* stopped here until SIGCONT */
	sigprocmask(SIG_BLOCK, &tstp, NULL);
	sigaction(SIGTSTP, &sa, NULL);
	term_enter(t);
}

static void term_size(int *cols, int *rows)
{
	struct winsize ws;

	*cols = 80;
	*rows = 24;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 &&
	    ws.ws_row > 0) {
		*cols = ws.ws_col;
		*rows = ws.ws_row;
	}
}

static void draw(const struct snapshot *then, const struct snapshot *now)
{
	struct layout l;
	char title[128], clock[16];
	time_t t = time(NULL);
	struct tm tm;
	int cols, rows;

	term_size(&cols, &rows);
	layout_fit(&l, now, cols);
	if (localtime_r(&t, &tm) == NULL ||
	    strftime(clock, sizeof(clock), "%H:%M:%S", &tm) == 0)
		strcpy(clock, "-");
	snprintf(title, sizeof(title), "qctl top - %s - %zu queue%s - "
		 "every %d s - q quits", clock, now->n, now->n == 1 ? "" : "s",
		 INTERVAL_MS / 1000);
	fputs("\033[H", stdout);
	put_line(&l, title);
	/* Title and header take two lines; the last line stays empty, so
	 * that no newline scrolls the screen. */
	put_table(&l, then, now, rows - 3 > 0 ? rows - 3 : 0);
	fputs("\033[J", stdout);
}

/* Reads what was typed; 1 if it says quit.  *watch is cleared at the end
 * of input that is not the terminal (on the terminal, 0 bytes is no key
 * yet), or on an error: it is then no longer watched. */
static int read_keys(const struct terminal *t, int *watch)
{
	char buf[64];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n <= 0) {
		if ((n == 0 && !t->keys) ||
		    (n < 0 && errno != EINTR && errno != EAGAIN))
			*watch = 0;
		return 0;
	}
	return memchr(buf, 'q', (size_t)n) || memchr(buf, 'Q', (size_t)n);
}

static int top_live(const struct args *a)
{
	struct snapshot then = { 0 }, now = { 0 };
	struct terminal t = { 0 };
	int watch_keys = 1, have_then = 0, status = QX_OK, err = 0, rc;

	/* The first list is taken before the screen changes: an unreachable
	 * daemon is one error line, as for every other command. */
	if ((rc = snapshot_take(&now)) != SHMQ_OK)
		return report_fail(a, rc);
	t.keys = isatty(STDIN_FILENO) &&
		 tcgetattr(STDIN_FILENO, &t.saved) == 0;
	signals_catch(&t);
	term_enter(&t);
	draw(NULL, &now);
	while (!got_quit) {
		uint64_t next = now.at + INTERVAL_MS * 1000000ull;
		struct timespec wait;
		struct pollfd pfd = { STDIN_FILENO, POLLIN, 0 };
		long ms;

		if (fflush(stdout) == EOF) {
			status = QCTL_EWRITE;
			err = errno;
			break;
		}
		ms = (long)((int64_t)(next - mono_ns()) / 1000000);
		if (ms > 0) {
			wait.tv_sec = ms / 1000;
			wait.tv_nsec = ms % 1000 * 1000000L;
			if (ppoll(&pfd, watch_keys ? 1 : 0, &wait,
				  &t.open_mask) > 0) {
				/* Hung up or gone: no more keys. */
				if (!(pfd.revents & POLLIN))
					watch_keys = 0;
				else if (read_keys(&t, &watch_keys))
					break;
			}
			if (got_tstp) {
				got_tstp = 0;
				suspend(&t);
				got_winch = 1;
			}
			if (got_winch) {
				got_winch = 0;
				draw(have_then ? &then : NULL, &now);
			}
			continue;
		}
		snapshot_free(&then);
		then = now;
		have_then = 1;
		if ((rc = snapshot_take(&now)) != SHMQ_OK) {
			status = rc;
			break;
		}
		draw(&then, &now);
	}
	term_leave(&t);
	signals_release(&t);
	snapshot_free(&then);
	snapshot_free(&now);
	if (status != QX_OK) {
		errno = err;
		return report_fail(a, status);
	}
	return QX_OK;
}

static int exec_top(struct args *a)
{
	if (a->opt[OPT_ONCE] || !isatty(STDOUT_FILENO))
		return top_once(a);
	return top_live(a);
}

static const struct cmd_opt top_opts[] = {
	{ OPT_ONCE, "once", 0, NULL, NULL,
	  "print one frame and exit (rates over one second)" },
	{ OPT_NONE }
};

const struct cmd_entry cmd_top_entry = {
	.name = "top",
	.usage = "[--once]",
	.summary = "watch every queue, refreshed each second",
	.help =
"Show the queues you may read, by name, one line each, redrawn every\n"
"second until you type q or Ctrl-C.  Columns: NAME; LENGTH/CAPACITY, as a\n"
"bar and as messages queued / the most the queue holds; IN/S and OUT/S,\n"
"messages put and got per second since the last frame ('-' in the first\n"
"frame and for a queue new since then); PROD and CONS, producers and\n"
"consumers attached; BPUT and BGET, those waiting in put (queue full) and\n"
"in get (queue empty); STATE: open, closed, closed-now or auto-closed,\n"
"followed by ',producer-lost' if a producer died without detaching.\n"
"The live view fits the terminal's width: the bar shrinks, then the\n"
"columns close up (LENGTH/CAPACITY becomes LEN/CAP), then names are cut\n"
"(ending in '+'); no other column is ever cut, down to about 50 columns.\n"
"\n"
"With --once, or when standard output is not a terminal, top prints the\n"
"header and one line per queue, whole, and exits: it lists the queues\n"
"twice, one second apart, and the rates are measured between the two.\n",
	.opts = top_opts,
	.min_args = 0,
	.max_args = 0,
	.exits = X_COMMON,
	.exec = exec_top,
};
