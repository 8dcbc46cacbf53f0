/*
 * knot.c - which blocked processes wait only for each other (see knot.h).
 *
 * Owns the analysis of one look: the reduction of the candidates to the
 * set that nobody outside can free, the wait-for graph over that set, its
 * strongly connected parts, the deadlocks and who is blocked behind them,
 * and who could free each wait.  It must never take a process out of
 * "may still run" on its own: it only takes out of the set, never adds.
 * Every step is linear in the size of the look (queues, entries,
 * processes), whatever the shape of the waits: a look is work done on
 * behalf of whoever blocks, and a chain of them must not cost its square.
 * It reads nothing but the look: no segment, no /proc but through the
 * caller's agrees().
 */
#include <stdlib.h>
#include <string.h>

#include "knot.h"

struct work {
	uint32_t *stack;            /* processes taken out, to propagate */
	size_t sp;
};

/* Takes p out of the set, to be propagated. */
static void take_out(struct look *l, struct work *w, uint32_t p)
{
	if (!l->p[p].stuck)
		return;
	l->p[p].stuck = 0;
	w->stack[w->sp++] = p;
}

/* Every process taken out frees, by a close, every wait on every queue it
 * has open: each queue is freed once, and its waiters taken out. */
static void propagate(struct look *l, struct work *w)
{
	while (w->sp > 0) {
		const struct lp *p = &l->p[w->stack[--w->sp]];
		for (uint32_t k = p->first; k != KNOT_NONE; k = l->a[k].next) {
			struct lq *q = &l->q[l->a[k].q];
			if (q->freed)
				continue;
			q->freed = 1;
			for (uint32_t j = q->first; j < q->first + q->n; j++) {
				const struct la *b = &l->a[j];
				if (b->w.threads[0] || b->w.threads[1])
					take_out(l, w, b->proc);
			}
		}
	}
}

static int reduce(struct look *l, int (*agrees)(struct lp *, void *),
		  void *ctx)
{
	struct work w = { malloc((l->np ? l->np : 1) * sizeof(uint32_t)), 0 };

	if (w.stack == NULL)
		return -1;
	for (size_t i = 0; i < l->nq; i++) {
		struct lq *q = &l->q[i];
		q->freed = 0;
		q->enders[0] = q->enders[1] = 0;
		for (uint32_t j = q->first; j < q->first + q->n; j++)
			for (int d = 0; d < 2; d++)
				q->enders[d] += knot_ender(&l->a[j], d);
	}
	/* Those that are no candidates, and those with a wait that nobody
	 * attached on the other side could end, start the propagation. */
	for (uint32_t i = 0; i < l->np; i++) {
		struct lp *p = &l->p[i];
		int out = !p->stuck;
		for (uint32_t k = p->first; !out && k != KNOT_NONE;
		     k = l->a[k].next)
			for (int d = 0; d < 2; d++)
				if (l->a[k].w.threads[d] &&
				    l->q[l->a[k].q].enders[d] == 0)
					out = 1;
		p->stuck = 1;
		if (out)
			take_out(l, &w, i);
	}
	propagate(l, &w);
	/* /proc is asked only about the survivors, each once: it only ever
	 * takes out, so one more propagation settles it. */
	for (uint32_t i = 0; i < l->np; i++)
		if (l->p[i].stuck && !agrees(&l->p[i], ctx))
			take_out(l, &w, i);
	propagate(l, &w);
	free(w.stack);
	return 0;
}

/* The wait-for graph of the set, in compressed rows: nodes 0 .. np-1 are
 * the processes, then one node per queue and side that some of them wait
 * on.  A process points to the nodes of its waits, a wait node to the
 * processes that could end such a wait (all in the set, or the waits
 * would have been freed).  Through the wait nodes the graph stays linear
 * in size, where process-to-process edges could be quadratic. */
struct graph {
	uint32_t n;                 /* nodes */
	uint32_t *start;            /* n + 1: edges of v: to[start[v] ..] */
	uint32_t *to;
	uint32_t *rstart, *rto;     /* the same, reversed */
	uint32_t *qd;               /* wait node - np: queue * 2 + side */
};

static void graph_free(struct graph *g)
{
	free(g->start);
	free(g->to);
	free(g->rstart);
	free(g->rto);
	free(g->qd);
}

/* Calls fn(from, to) for every edge, in order of `from`. */
static void each_edge(const struct look *l, const struct graph *g,
		      void (*fn)(uint32_t, uint32_t, void *), void *arg)
{
	for (uint32_t i = 0; i < l->np; i++) {
		const struct lp *p = &l->p[i];
		if (!p->stuck)
			continue;
		for (uint32_t k = p->first; k != KNOT_NONE; k = l->a[k].next)
			for (int d = 0; d < 2; d++)
				if (l->a[k].w.threads[d])
					fn(i, l->q[l->a[k].q].node[d], arg);
	}
	for (uint32_t v = (uint32_t)l->np; v < g->n; v++) {
		const struct lq *q = &l->q[g->qd[v - l->np] / 2];
		int d = (int)(g->qd[v - l->np] % 2);
		for (uint32_t j = q->first; j < q->first + q->n; j++)
			if (knot_ender(&l->a[j], d) && l->p[l->a[j].proc].stuck)
				fn(v, l->a[j].proc, arg);
	}
}

static void count_edge(uint32_t from, uint32_t to, void *arg)
{
	struct graph *g = arg;

	g->start[from + 1]++;
	g->rstart[to + 1]++;
}

static void place_edge(uint32_t from, uint32_t to, void *arg)
{
	struct graph *g = arg;

	g->to[g->start[from]++] = to;
	g->rto[g->rstart[to]++] = from;
}

static int graph_build(struct look *l, struct graph *g)
{
	memset(g, 0, sizeof(*g));
	for (size_t i = 0; i < l->nq; i++)
		l->q[i].node[0] = l->q[i].node[1] = KNOT_NONE;
	g->qd = malloc((2 * l->nq + 1) * sizeof(*g->qd));
	if (g->qd == NULL)
		return -1;
	g->n = (uint32_t)l->np;
	for (uint32_t i = 0; i < l->np; i++) {
		const struct lp *p = &l->p[i];
		for (uint32_t k = p->first; p->stuck && k != KNOT_NONE;
		     k = l->a[k].next)
			for (int d = 0; d < 2; d++) {
				struct lq *q = &l->q[l->a[k].q];
				if (!l->a[k].w.threads[d])
					continue;
				if (q->node[d] != KNOT_NONE)
					continue;
				q->node[d] = g->n++;
				g->qd[q->node[d] - l->np] =
					l->a[k].q * 2 + (uint32_t)d;
			}
	}
	g->start = calloc(g->n + 1, sizeof(*g->start));
	g->rstart = calloc(g->n + 1, sizeof(*g->rstart));
	if (g->start == NULL || g->rstart == NULL)
		return -1;
	each_edge(l, g, count_edge, g);
	for (uint32_t v = 0; v < g->n; v++) {
		g->start[v + 1] += g->start[v];
		g->rstart[v + 1] += g->rstart[v];
	}
	uint32_t m = g->start[g->n];
	g->to = malloc((m ? m : 1) * sizeof(*g->to));
	g->rto = malloc((m ? m : 1) * sizeof(*g->rto));
	if (g->to == NULL || g->rto == NULL)
		return -1;
	each_edge(l, g, place_edge, g);
	/* Placing advanced each start to the next one's: shift back. */
	for (uint32_t v = g->n; v > 0; v--) {
		g->start[v] = g->start[v - 1];
		g->rstart[v] = g->rstart[v - 1];
	}
	g->start[0] = g->rstart[0] = 0;
	return 0;
}

/* Tarjan's strongly connected components, without recursion (the call
 * stack holds (node, next edge)); only nodes of the set take part.
 * scc[v]: the component of v, or -1 for a process not in the set.
 * Returns how many components there are, or -1 if out of memory. */
static int components(const struct look *l, const struct graph *g, int *scc)
{
	uint32_t n = g->n;
	int *idx = malloc((n ? n : 1) * sizeof(*idx));
	int *low = malloc((n ? n : 1) * sizeof(*low));
	uint32_t *stack = malloc((n ? n : 1) * sizeof(*stack));
	uint32_t *cnode = malloc((n ? n : 1) * sizeof(*cnode));
	uint32_t *cedge = malloc((n ? n : 1) * sizeof(*cedge));
	uint8_t *on = calloc(n ? n : 1, 1);
	int counter = 0, nscc = -1;
	size_t sp = 0, cp = 0;

	if (!idx || !low || !stack || !cnode || !cedge || !on)
		goto out;
	nscc = 0;
	for (uint32_t v = 0; v < n; v++) {
		idx[v] = -1;
		scc[v] = -1;
	}
	for (uint32_t s = 0; s < n; s++) {
		if (idx[s] >= 0 || (s < l->np && !l->p[s].stuck))
			continue;
		idx[s] = low[s] = counter++;
		on[s] = 1;
		stack[sp++] = s;
		cnode[cp] = s;
		cedge[cp++] = g->start[s];
		while (cp > 0) {
			uint32_t v = cnode[cp - 1], e = cedge[cp - 1];
			if (e < g->start[v + 1]) {
				cedge[cp - 1]++;
				uint32_t w = g->to[e];
				if (idx[w] < 0) {
					idx[w] = low[w] = counter++;
					on[w] = 1;
					stack[sp++] = w;
					cnode[cp] = w;
					cedge[cp++] = g->start[w];
				} else if (on[w] && idx[w] < low[v]) {
					low[v] = idx[w];
				}
				continue;
			}
			cp--;
			if (cp > 0 && low[v] < low[cnode[cp - 1]])
				low[cnode[cp - 1]] = low[v];
			if (low[v] == idx[v]) {
				uint32_t w;
				do {
					w = stack[--sp];
					on[w] = 0;
					scc[w] = nscc;
				} while (w != v);
				nscc++;
			}
		}
	}
out:
	free(idx);
	free(low);
	free(stack);
	free(cnode);
	free(cedge);
	free(on);
	return nscc;
}

/* Every component that no edge leaves is a deadlock, numbered in the
 * order of its first process; every other node of the set reaches one,
 * and takes the number of the first it reaches (a search backwards from
 * all deadlocks at once).  Returns how many, or -1. */
static int number(struct look *l, const struct graph *g, const int *scc,
		  int nscc)
{
	int *num = malloc((nscc ? (size_t)nscc : 1) * sizeof(*num));
	uint8_t *sink = malloc(nscc ? (size_t)nscc : 1);
	int *dl = malloc((g->n ? g->n : 1) * sizeof(*dl));
	uint32_t *queue = malloc((g->n ? g->n : 1) * sizeof(*queue));
	size_t head = 0, tail = 0;
	int ndl = -1;

	if (!num || !sink || !dl || !queue)
		goto out;
	for (int c = 0; c < nscc; c++) {
		sink[c] = 1;
		num[c] = -1;
	}
	for (uint32_t v = 0; v < g->n; v++)
		for (uint32_t e = g->start[v]; scc[v] >= 0 && e < g->start[v + 1];
		     e++)
			if (scc[g->to[e]] != scc[v])
				sink[scc[v]] = 0;
	ndl = 0;
	for (uint32_t i = 0; i < l->np; i++) {
		struct lp *p = &l->p[i];
		p->deadlock = -1;
		p->behind = 0;
		if (scc[i] >= 0 && sink[scc[i]] && num[scc[i]] < 0)
			num[scc[i]] = ndl++;
	}
	for (uint32_t v = 0; v < g->n; v++) {
		dl[v] = scc[v] >= 0 && sink[scc[v]] ? num[scc[v]] : -1;
		if (dl[v] >= 0)
			queue[tail++] = v;
	}
	while (head < tail) {
		uint32_t v = queue[head++];
		for (uint32_t e = g->rstart[v]; e < g->rstart[v + 1]; e++) {
			uint32_t u = g->rto[e];
			if (dl[u] >= 0 || scc[u] < 0)
				continue;
			dl[u] = dl[v];
			queue[tail++] = u;
		}
	}
	for (uint32_t i = 0; i < l->np; i++) {
		struct lp *p = &l->p[i];
		if (!p->stuck || dl[i] < 0)
			continue;
		p->deadlock = dl[i];
		p->behind = !sink[scc[i]];
	}
out:
	free(num);
	free(sink);
	free(dl);
	free(queue);
	return ndl;
}

/* Who could free each wait of the set: the distinct processes among the
 * enders of its queue and side. */
static int name_freers(struct look *l)
{
	uint32_t *stamp = calloc(l->np ? l->np : 1, sizeof(*stamp));
	uint32_t mark = 0;

	if (stamp == NULL)
		return -1;
	for (size_t i = 0; i < l->nq; i++) {
		struct lq *q = &l->q[i];
		for (int d = 0; d < 2; d++) {
			q->nfreers[d] = 0;
			if (q->node[d] == KNOT_NONE)
				continue;
			mark++;
			for (uint32_t j = q->first; j < q->first + q->n; j++) {
				uint32_t p = l->a[j].proc;
				if (!knot_ender(&l->a[j], d) || stamp[p] == mark)
					continue;
				stamp[p] = mark;
				if (q->nfreers[d] < KNOT_FREERS)
					q->freers[d][q->nfreers[d]] = p;
				q->nfreers[d]++;
			}
		}
	}
	free(stamp);
	return 0;
}

int knot_find(struct look *l, int (*agrees)(struct lp *p, void *ctx),
	      void *ctx)
{
	struct graph g;
	int *scc = NULL, nscc, ndl = -1;

	for (size_t i = 0; i < l->np; i++) {
		l->p[i].deadlock = -1;
		l->p[i].behind = 0;
	}
	if (reduce(l, agrees, ctx) < 0)
		return -1;
	if (graph_build(l, &g) == 0 &&
	    (scc = malloc((g.n ? g.n : 1) * sizeof(*scc))) != NULL &&
	    (nscc = components(l, &g, scc)) >= 0 &&
	    name_freers(l) == 0)
		ndl = number(l, &g, scc, nscc);
	free(scc);
	graph_free(&g);
	if (ndl < 0)
		for (size_t i = 0; i < l->np; i++)
			l->p[i].deadlock = -1;
	return ndl;
}
