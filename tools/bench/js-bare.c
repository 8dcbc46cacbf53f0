/*
 * js-bare.c - a bare JetStream publisher and pull consumer (libnats
 * alone), the yardstick tools/bench/bridge-bench.sh puts next to
 * shmq-bridge: the same server, stream kind, window and batch, without
 * the local queues and the bridge's bookkeeping.
 *
 *   js-bare setup URL STREAM          (re)create the stream and consumer
 *   js-bare pub URL STREAM COUNT SIZE WINDOW
 *   js-bare sub URL STREAM COUNT BATCH
 *
 * pub publishes COUNT messages of SIZE bytes, WINDOW at a time in flight
 * (asynchronous, each with a Nats-Msg-Id, as the bridge does) and waits
 * for every acknowledgment; sub fetches and acks until it has COUNT.
 * Each prints nothing and exits 0 on success, 1 with a line on failure.
 * Bench tool only: not installed, never run by make check.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#define CONSUMER "bare"

static int fail(const char *what, natsStatus s)
{
	fprintf(stderr, "js-bare: %s: %s\n", what, natsStatus_GetText(s));
	return 1;
}

static int setup(jsCtx *js, const char *stream)
{
	jsStreamConfig sc;
	jsConsumerConfig cc;
	jsErrCode jerr = 0;
	natsStatus s;

	js_DeleteStream(js, stream, NULL, &jerr);
	jsStreamConfig_Init(&sc);
	sc.Name = stream;
	sc.Retention = js_WorkQueuePolicy;
	sc.Discard = js_DiscardNew;
	sc.MaxMsgs = 1000000;
	sc.Duplicates = 120 * 1000000000ll;
	s = js_AddStream(NULL, js, &sc, NULL, &jerr);
	if (s != NATS_OK)
		return fail("add stream", s);
	jsConsumerConfig_Init(&cc);
	cc.Durable = CONSUMER;
	cc.AckPolicy = js_AckExplicit;
	cc.MaxAckPending = 256;
	s = js_AddConsumer(NULL, js, stream, &cc, NULL, &jerr);
	return s == NATS_OK ? 0 : fail("add consumer", s);
}

static int pub(natsConnection *nc, jsCtx *js, const char *stream,
	       long count, long size, long window)
{
	char *data = malloc((size_t)size + 1);
	char id[64];
	natsStatus s = NATS_OK;

	if (data == NULL)
		return fail("malloc", NATS_NO_MEMORY);
	memset(data, 'x', (size_t)size);
	for (long i = 0; i < count && s == NATS_OK;) {
		long end = i + window < count ? i + window : count;
		for (; i < end && s == NATS_OK; i++) {
			jsPubOptions po;
			natsMsg *m = NULL;

			jsPubOptions_Init(&po);
			snprintf(id, sizeof(id), "bare:%ld", i);
			po.MsgId = id;
			po.MaxWait = 5000;
			s = natsMsg_Create(&m, stream, NULL, data, (int)size);
			if (s == NATS_OK)
				s = js_PublishMsgAsync(js, &m, &po);
			natsMsg_Destroy(m);
		}
		natsConnection_FlushTimeout(nc, 5000);
		if (s == NATS_OK)
			s = js_PublishAsyncComplete(js, NULL);
	}
	free(data);
	return s == NATS_OK ? 0 : fail("publish", s);
}

static int sub(jsCtx *js, const char *stream, long count, long batch)
{
	natsSubscription *sb = NULL;
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus s;
	long got = 0;

	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Consumer = CONSUMER;
	s = js_PullSubscribe(&sb, js, NULL, CONSUMER, NULL, &so, &jerr);
	if (s != NATS_OK)
		return fail("subscribe", s);
	while (got < count) {
		natsMsgList list;

		s = natsSubscription_Fetch(&list, sb, (int)batch, 1000, &jerr);
		if (s == NATS_TIMEOUT)
			continue;
		if (s != NATS_OK)
			break;
		for (int i = 0; i < list.Count; i++)
			natsMsg_Ack(list.Msgs[i], NULL);
		got += list.Count;
		natsMsgList_Destroy(&list);
	}
	natsSubscription_Destroy(sb);
	return got >= count ? 0 : fail("fetch", s);
}

int main(int argc, char **argv)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	natsStatus s;
	int rc;

	if (argc < 4 || (strcmp(argv[1], "setup") != 0 &&
			 strcmp(argv[1], "pub") != 0 &&
			 strcmp(argv[1], "sub") != 0)) {
		fprintf(stderr, "usage: js-bare setup|pub|sub URL STREAM ...\n");
		return 2;
	}
	s = natsConnection_ConnectTo(&nc, argv[2]);
	if (s == NATS_OK)
		s = natsConnection_JetStream(&js, nc, NULL);
	if (s != NATS_OK)
		return fail(argv[2], s);
	if (strcmp(argv[1], "setup") == 0)
		rc = setup(js, argv[3]);
	else if (strcmp(argv[1], "pub") == 0 && argc == 7)
		rc = pub(nc, js, argv[3], atol(argv[4]), atol(argv[5]),
			 atol(argv[6]));
	else if (strcmp(argv[1], "sub") == 0 && argc == 6)
		rc = sub(js, argv[3], atol(argv[4]), atol(argv[5]));
	else
		rc = 2;
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	nats_Close();
	return rc;
}
