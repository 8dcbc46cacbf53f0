/*
 * main.c - qctl's entry point: finds the command in the table, parses its
 * options from its entry, runs it; and writes every help screen from the
 * table.
 *
 * Each command is one table entry (name, usage, summary, long help,
 * options, handler) exported by its cmd-*.c, as in tmux.  qctl's spellings,
 * help texts and exit statuses are a contract (docs/qctl.md,
 * docs/exit-status.md): scripts depend on them.  Nothing here knows what a
 * command does, and no command parses its own command line.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qctl.h"

#ifndef SHMQD_PATH
#define SHMQD_PATH "shmqd"
#endif

static const struct cmd_entry cmd_help_entry;

/* ------------------------------------------------------------------ */
/* The table, and what is generated from it                          */

static const struct cmd_entry *const cmd_table[] = {
	&cmd_create_entry,
	&cmd_put_entry,
	&cmd_get_entry,
	&cmd_cat_entry,
	&cmd_work_entry,
	&cmd_close_entry,
	&cmd_join_entry,
	&cmd_pending_entry,
	&cmd_stat_entry,
	&cmd_ls_entry,
	&cmd_rm_entry,
	&cmd_top_entry,
	&cmd_users_entry,
	&cmd_deadlocks_entry,
	&cmd_help_entry,
};

#define N_CMDS (sizeof(cmd_table) / sizeof(cmd_table[0]))
#define N_OPTS 16               /* most options of one command, with --help */

static const struct cmd_opt help_opt = {
	OPT_HELP, "help", 'h', NULL, NULL, "show this help"
};

static const struct cmd_entry *cmd_find(const char *name)
{
	for (size_t i = 0; i < N_CMDS; i++)
		if (strcmp(cmd_table[i]->name, name) == 0 ||
		    (cmd_table[i]->alias &&
		     strcmp(cmd_table[i]->alias, name) == 0))
			return cmd_table[i];
	return NULL;
}

/* The command's options followed by --help, at most N_OPTS. */
static size_t cmd_opts(const struct cmd_entry *cmd,
		       const struct cmd_opt *out[N_OPTS])
{
	size_t n = 0;

	for (const struct cmd_opt *o = cmd->opts; o && o->id; o++)
		if (n < N_OPTS - 1)
			out[n++] = o;
	out[n++] = &help_opt;
	return n;
}

static void opt_help(const struct cmd_opt *o, FILE *f)
{
	char spec[64];
	int n;

	if (o->letter)
		n = snprintf(spec, sizeof(spec), "-%c, --%s", o->letter,
			     o->name);
	else
		n = snprintf(spec, sizeof(spec), "    --%s", o->name);
	if (o->arg && n >= 0 && (size_t)n < sizeof(spec))
		snprintf(spec + n, sizeof(spec) - (size_t)n, " %s", o->arg);
	if (strlen(spec) > 20)
		fprintf(f, "  %s\n  %-20s  %s\n", spec, "", o->help);
	else
		fprintf(f, "  %-20s  %s\n", spec, o->help);
}

static void cmd_help(const struct cmd_entry *cmd, FILE *f)
{
	const struct cmd_opt *opts[N_OPTS];
	size_t n = cmd_opts(cmd, opts);

	fprintf(f, "usage: qctl %s %s\n\n", cmd->name, cmd->usage);
	fprintf(f, "qctl %s: %s.", cmd->name, cmd->summary);
	if (cmd->alias)
		fprintf(f, "  (Also spelt '%s'.)", cmd->alias);
	fprintf(f, "\n\n%s\nOptions:\n", cmd->help);
	for (size_t i = 0; i < n; i++)
		opt_help(opts[i], f);
	fputc('\n', f);
	report_exits_help(cmd->exits, cmd->flags & CMD_TO_END ? cmd->name
							: NULL, f);
}

static void main_help(FILE *f)
{
	fputs("usage: qctl COMMAND [ARGS...]\n"
	      "       qctl COMMAND --help\n"
	      "       qctl --help | --version\n"
	      "\n"
	      "Named, bounded message queues in shared memory (shmq).  Queues are\n"
	      "served by the shmqd daemon; 'producer | qctl put --close q' and\n"
	      "'qctl cat q | consumer' work as the two ends of a pipe, with\n"
	      "message boundaries, many producers and consumers, and a bounded\n"
	      "buffer.\n"
	      "\n"
	      "Commands:\n", f);
	for (size_t i = 0; i < N_CMDS; i++)
		fprintf(f, "  %-7s %s\n", cmd_table[i]->name,
			cmd_table[i]->summary);
	fputs("\n"
	      "Options may come before or after NAME; '--' ends them.  A queue\n"
	      "name is 1-255 bytes of A-Z a-z 0-9 . _ -, not starting with '.'.\n"
	      "Sizes and counts take an optional K, M or G (powers of 1024).\n"
	      "SECONDS may have a fraction (0.25); it is rounded up to whole\n"
	      "milliseconds, and 0 means do not wait.  Without --timeout, put and\n"
	      "get wait as long as it takes.  Errors are one line on standard\n"
	      "error: 'qctl: COMMAND NAME: cause'.\n"
	      "\n", f);
	/* The table in the words of docs/exit-status.md, which name cat
	 * for exit 0 (work's help says that its status is cat's). */
	report_exits_help(~0u, "cat", f);
	fputs("\n"
	      "Environment:\n"
	      "  SHMQ_SOCKET        the daemon's control socket (default: the\n"
	      "                     system daemon's /run/shmq/shmqd.sock if it\n"
	      "                     exists, else $XDG_RUNTIME_DIR/shmq/shmqd.sock\n"
	      "                     or /tmp/shmq-UID/shmqd.sock)\n"
	      "  SHMQ_NO_AUTOSTART  if set, never start a per-user daemon; without\n"
	      "                     it, one is started when none answers\n"
	      "  SHMQ_DAEMON        the shmqd binary to start (default:\n"
	      "                     " SHMQD_PATH ")\n", f);
}

/* ------------------------------------------------------------------ */
/* help, the command                                                  */

static int exec_help(struct args *a)
{
	const struct cmd_entry *cmd;
	char buf[CLEAN_MAX];

	if (a->argc == 0) {
		main_help(stdout);
		return QX_OK;
	}
	cmd = cmd_find(a->argv[0]);
	if (cmd == NULL)
		return report_usage(a, "unknown command '%s'",
				   report_clean(a->argv[0], buf, sizeof(buf)));
	cmd_help(cmd, stdout);
	return QX_OK;
}

static const struct cmd_entry cmd_help_entry = {
	.name = "help",
	.usage = "[COMMAND]",
	.summary = "show qctl's help, or a command's",
	.help = "Same as 'qctl --help' or 'qctl COMMAND --help'.\n",
	.opts = NULL,
	.min_args = 0,
	.max_args = 1,
	.exits = X(QX_OK) | X(QX_USAGE),
	.exec = exec_help,
};

/* ------------------------------------------------------------------ */
/* Parsing a command line                                             */

/* getopt's val for an option: its letter, or a code above every char. */
static int opt_val(const struct cmd_opt *o, size_t index)
{
	return o->letter ? (unsigned char)o->letter : 0x100 + (int)index;
}

/* getopt tables from the command's entry: shortopts starts with "-", so
 * that operands come back in order as 1 (options may follow NAME whatever
 * POSIXLY_CORRECT says), and ":", so that qctl words every error itself. */
static void build_getopt(const struct cmd_opt *const *opts, size_t n,
			 struct option *lo, char *so)
{
	*so++ = '-';
	*so++ = ':';
	for (size_t i = 0; i < n; i++) {
		lo[i].name = opts[i]->name;
		lo[i].has_arg = opts[i]->arg ? required_argument : no_argument;
		lo[i].flag = NULL;
		lo[i].val = opt_val(opts[i], i);
		if (opts[i]->letter) {
			*so++ = opts[i]->letter;
			if (opts[i]->arg)
				*so++ = ':';
		}
	}
	memset(&lo[n], 0, sizeof(lo[n]));
	*so = '\0';
}

/* How many long options `word` (without its "--") abbreviates. */
static int opt_prefixes(const struct option *lo, const char *word,
			size_t len)
{
	int n = 0;

	for (; lo->name; lo++)
		if (strncmp(lo->name, word, len) == 0)
			n++;
	return n;
}

static int short_error(const struct args *a, int c)
{
	if (!(optopt > 0x20 && optopt < 0x7f))
		return report_usage(a, "unknown option");
	if (c == ':')
		return report_usage(a, "option '-%c' needs an argument",
				   optopt);
	return report_usage(a, "unknown option '-%c'", optopt);
}

/* Words a getopt error.  `el` is the argument being parsed: operands come
 * back in order, so nothing was permuted and argv[optind before the call]
 * is it.  A long option is named without any "=value". */
static int option_error(const struct args *a, const struct option *lo,
			int c, const char *el)
{
	char buf[CLEAN_MAX], word[CLEAN_MAX];
	size_t len;

	if (strncmp(el, "--", 2) != 0)
		return short_error(a, c);
	len = strcspn(el + 2, "=");
	snprintf(word, sizeof(word), "--%.*s", (int)len, el + 2);
	report_clean(word, buf, sizeof(buf));
	if (c == ':')
		return report_usage(a, "option '%s' needs an argument", buf);
	if (optopt)
		return report_usage(a, "option '%s' takes no argument", buf);
	if (opt_prefixes(lo, el + 2, len) > 1)
		return report_usage(a, "ambiguous option '%s'", buf);
	return report_usage(a, "unknown option '%s'", buf);
}

static int check_operands(struct args *a, char **pos, int npos)
{
	const struct cmd_entry *cmd = a->cmd;
	char buf[CLEAN_MAX];
	int rc;

	if (npos < cmd->min_args)
		return report_usage(a, (cmd->flags & CMD_QUEUE) && npos == 0
					      ? "missing queue NAME"
				       : (cmd->flags & CMD_ARGV)
					      ? "missing COMMAND after NAME"
					      : "missing argument");
	if (cmd->max_args >= 0 && npos > cmd->max_args)
		return report_usage(a, "unexpected argument '%s'",
				   report_clean(pos[cmd->max_args], buf,
					 sizeof(buf)));
	a->argv = pos;
	a->argc = npos;
	if (cmd->flags & CMD_QUEUE) {
		a->name = pos[0];
		a->argv++;
		a->argc--;
		if ((rc = shmq_check_name(a->name)) != SHMQ_OK)
			return report_fail(a, rc);
	}
	return -1;
}

/* Parses argv (argv[0] is the command's name) into *a.  Returns -1 to go
 * on, or the exit status to leave with (after --help or an error). */
static int parse_args(const struct cmd_entry *cmd, int argc, char **argv,
		      struct args *a, char **pos)
{
	const struct cmd_opt *opts[N_OPTS];
	struct option lo[N_OPTS + 1];
	char so[3 + 2 * N_OPTS + 1];
	size_t n = cmd_opts(cmd, opts);
	int npos = 0, c;

	memset(a, 0, sizeof(*a));
	a->cmd = cmd;
	build_getopt(opts, n, lo, so);
	opterr = 0;
	optind = 1;
	for (;;) {
		int at = optind;
		const struct cmd_opt *o = NULL;

		c = getopt_long(argc, argv, so, lo, NULL);
		if (c == -1)
			break;
		if (c == 1) {
			pos[npos++] = optarg;
			/* A command line after NAME is the command's own:
			 * "qctl work q sh -c 'x'" must not parse -c. */
			if ((cmd->flags & CMD_ARGV) && npos >= 2)
				break;
			continue;
		}
		if (c == '?' || c == ':')
			return option_error(a, lo, c,
					    at < argc ? argv[at] : "");
		for (size_t i = 0; i < n && o == NULL; i++)
			if (opt_val(opts[i], i) == c)
				o = opts[i];
		if (o == NULL)
			return report_usage(a, "unknown option");
		if (o->id == OPT_HELP) {
			cmd_help(cmd, stdout);
			return QX_OK;
		}
		a->opt[o->id] = o->value ? o->value : o->arg ? optarg : "";
		a->src[o->id] = o;
	}
	while (optind < argc)
		pos[npos++] = argv[optind++];
	return check_operands(a, pos, npos);
}

int main(int argc, char **argv)
{
	const struct cmd_entry *cmd;
	struct args a;
	char buf[CLEAN_MAX];
	char **pos;
	int status;

	if (argc < 2) {
		fputs("qctl: missing command (try 'qctl --help')\n", stderr);
		return QX_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		main_help(stdout);
		return QX_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("qctl (shmq) %s\n", shmq_version());
		return QX_OK;
	}
	cmd = cmd_find(argv[1]);
	if (cmd == NULL) {
		fprintf(stderr, "qctl: unknown %s '%s' (try 'qctl --help')\n",
			argv[1][0] == '-' ? "option" : "command",
			report_clean(argv[1], buf, sizeof(buf)));
		return QX_USAGE;
	}
	pos = calloc((size_t)argc, sizeof(*pos));
	if (pos == NULL) {
		fputs("qctl: out of memory\n", stderr);
		return QX_ERROR;
	}
	status = parse_args(cmd, argc - 1, argv + 1, &a, pos);
	if (status < 0)
		status = cmd->exec(&a);
	free(pos);
	return status;
}

