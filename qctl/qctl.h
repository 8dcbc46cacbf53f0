/*
 * qctl.h - what qctl's files share: the command table's types, the exit
 * statuses, and the helpers of report.c, number.c and fields.c.
 *
 * Internal to qctl.  It must never expose anything of libshmq beyond
 * <shmq.h>: qctl is a plain client and never reaches into the segment
 * layout or the wire protocol.
 */
#ifndef QCTL_H
#define QCTL_H

#include <stdint.h>
#include <stdio.h>

#include "shmq.h"

#define CLEAN_MAX 80            /* longest user text quoted in a message */

/* qctl's own failures, beside the library's statuses, so that one report
 * path serves both.  Far below every SHMQ_E*. */
#define QCTL_EWRITE (-1000)     /* writing standard output failed */
#define QCTL_EREAD  (-1001)     /* reading standard input failed */

/* Exit statuses: scripts depend on them (docs/exit-status.md). */
enum {
	QX_OK       = 0,
	QX_ERROR    = 1,
	QX_USAGE    = 2,
	QX_EOS      = 3,
	QX_CLOSED   = 4,
	QX_TIMEOUT  = 5,
	QX_NOENT    = 6,
	QX_ACCESS   = 7,
	QX_NODAEMON = 8,
	QX_TOOBIG   = 9,
	QX_EOS_LOST = 10,
	QX_EXISTS   = 11,
	QX_DEADLOCK = 12,
};

#define X(status) (1u << (status))
/* Statuses every command that talks to the daemon may end with. */
#define X_COMMON (X(QX_OK) | X(QX_ERROR) | X(QX_USAGE) | X(QX_NODAEMON))

/* ------------------------------------------------------------------ */
/* The command table                                                  */

enum opt_id {
	OPT_NONE,
	OPT_HELP,
	OPT_NUL,
	OPT_COUNT,
	OPT_CAPACITY,
	OPT_MAX_MSG,
	OPT_MAX_BYTES,
	OPT_MODE,
	OPT_AUTO_CLOSE,
	OPT_EXIST_OK,
	OPT_CLOSE,
	OPT_TIMEOUT,
	OPT_NOW,
	OPT_JSON,
	OPT_ONCE,
	OPT_LONG,
	OPT_NAMES,
	OPT_ON_DEADLOCK,
	OPT_ACKED,
	OPT_LEASE_TIMEOUT,
	OPT_MAX_DELIVERIES,
	OPT_DEAD_LETTER,
	OPT_JOBS,
	OPT_LAST
};

struct cmd_opt {
	enum opt_id id;
	const char *name;       /* long name */
	char letter;            /* short name, or 0 */
	const char *arg;        /* the argument's name; NULL for a flag */
	const char *value;      /* a flag standing for "id = value" */
	const char *help;
};

struct cmd_entry;

/* A parsed command line. */
struct args {
	const struct cmd_entry *cmd;
	const char *name;       /* the queue, once checked */
	int argc;               /* arguments after the queue name */
	char **argv;
	/* Per option: its argument ("" for a flag), or NULL if not given.
	 * The last occurrence wins, so --nonblock and --timeout override
	 * each other in command-line order. */
	const char *opt[OPT_LAST];
	const struct cmd_opt *src[OPT_LAST];    /* which one, for messages */
};

#define CMD_QUEUE 0x1u          /* the first argument is a queue name */
#define CMD_ARGV  0x2u          /* after NAME comes a command line: options
				   end at its first word */
#define CMD_TO_END 0x4u         /* reads to end of stream: that is its
				   exit 0 */

/* One command: each cmd-*.c exports its entries, main.c lists them, and
 * the parser and every help screen are generated from them. */
struct cmd_entry {
	const char *name;
	const char *alias;
	const char *usage;      /* what follows "qctl NAME " */
	const char *summary;
	const char *help;       /* paragraphs between usage and options */
	const struct cmd_opt *opts;
	int min_args;           /* counting the queue name */
	int max_args;           /* -1: no limit */
	unsigned flags;         /* CMD_* */
	unsigned exits;         /* X() of the statuses its help lists */
	int (*exec)(struct args *);
};

extern const struct cmd_entry cmd_create_entry;
extern const struct cmd_entry cmd_put_entry;
extern const struct cmd_entry cmd_get_entry;
extern const struct cmd_entry cmd_cat_entry;
extern const struct cmd_entry cmd_close_entry;
extern const struct cmd_entry cmd_stat_entry;
extern const struct cmd_entry cmd_ls_entry;
extern const struct cmd_entry cmd_rm_entry;
extern const struct cmd_entry cmd_top_entry;
extern const struct cmd_entry cmd_users_entry;
extern const struct cmd_entry cmd_deadlocks_entry;
extern const struct cmd_entry cmd_work_entry;
extern const struct cmd_entry cmd_join_entry;
extern const struct cmd_entry cmd_pending_entry;

/* ------------------------------------------------------------------ */
/* report.c: errors and exit statuses                                 */

/* User text made safe to quote: control bytes escaped, length capped. */
const char *report_clean(const char *s, char *buf, size_t size);
/* The one line of an error: "qctl: COMMAND NAME: cause". */
__attribute__((format(printf, 2, 3)))
void report(const struct args *a, const char *fmt, ...);
/* Reports a failed status (with errno and the library's detail, which
 * must still be the failing call's) and returns its exit status. */
int report_fail(const struct args *a, int rc);
/* Bad usage: one line pointing at the help; returns QX_USAGE. */
__attribute__((format(printf, 2, 3)))
int report_usage(const struct args *a, const char *fmt, ...);
/* The exit status for a status. */
int report_exit_status(int rc);
/* Flushes standard output: a failed write is an error, not a silent
 * truncation. */
int report_flush(const struct args *a);
/* The "Exit status:" section of a help screen, for the statuses in mask.
 * `to_end` names the command(s) for which exit 0 means end of stream
 * (CMD_TO_END), or is NULL. */
void report_exits_help(unsigned mask, const char *to_end, FILE *f);

/* ------------------------------------------------------------------ */
/* number.c: numbers on the command line                              */

/* Reports option id's argument as bad; returns QX_USAGE. */
int num_bad(const struct args *a, enum opt_id id, const char *why);
/* An option's size within [min, max]; *v is left alone if it is absent.
 * These return QX_OK or, having reported why, QX_USAGE. */
int num_opt_size(const struct args *a, enum opt_id id, uint64_t min,
		 uint64_t max, uint64_t *v);
int num_opt_u32(const struct args *a, enum opt_id id, uint32_t min,
		uint32_t *v);
/* --timeout/--nonblock in milliseconds; SHMQ_FOREVER if neither. */
int num_opt_timeout(const struct args *a, int *ms);
/* Option id's SECONDS in milliseconds (rounded up); *ms is left alone if
 * it is absent. */
int num_opt_seconds(const struct args *a, enum opt_id id, int *ms);
/* Octal permission bits, at most 0777. */
int num_opt_mode(const struct args *a, enum opt_id id, uint32_t *mode);

/* ------------------------------------------------------------------ */
/* fields.c: one set of fields, as "key: value" lines or a JSON object */

struct fields {
	int json;
	int n;                  /* fields written so far */
};

void fields_str(struct fields *f, const char *key, const char *val);
void fields_u64(struct fields *f, const char *key, uint64_t val);
/* A limit: the number, or SHMQ_UNLIMITED as 'unlimited' (null in JSON). */
void fields_limit(struct fields *f, const char *key, uint64_t val);
/* A string, or "-" (null in JSON) for NULL or "". */
void fields_str_or_none(struct fields *f, const char *key, const char *val);
void fields_bool(struct fields *f, const char *key, int val);
/* UTC, ISO 8601, milliseconds; 0 is "never" ('-', or null in JSON). */
void fields_time(struct fields *f, const char *key, int64_t ns);
/* A JSON string, on its own (for output that is not one flat object). */
void fields_json_string(const char *s);
/* Closes the object (JSON only). */
void fields_end(const struct fields *f);
/* "open", "closed" or "closed-now". */
const char *fields_state_name(int state);

#endif /* QCTL_H */
