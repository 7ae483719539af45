// One kafkajs consumer-group member, run as its own process by test_consumer_groups.py; the same protocol as
// group_member.py: usage `node member.js BOOTSTRAP TOPIC GROUP NAME`, JSON lines on stdout, "stop" on stdin.
// Each batch's offsets are committed before its records are reported.
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, group, name] = process.argv.slice(2);
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const kafka = new Kafka({ clientId: name, brokers: [bootstrap], logLevel: logLevel.WARN });
const consumer = kafka.consumer({
  groupId: group,
  sessionTimeout: 6000,
  heartbeatInterval: 500,
  rebalanceTimeout: 10000,
  metadataMaxAge: 1000,
});

consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
  const partitions = (payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b);
  emit({ event: 'assigned', member: name, partitions });
});

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await consumer.disconnect();
  emit({ event: 'closed', member: name });
  process.exit(0);
}

process.stdin.on('data', (chunk) => { if (chunk.toString().includes('stop')) stop(); });
process.stdin.on('end', stop);

(async () => {
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, isRunning, isStale }) => {
      if (!isRunning() || isStale() || batch.messages.length === 0) return;
      const last = batch.messages[batch.messages.length - 1].offset;
      try {
        await consumer.commitOffsets([{ topic, partition: batch.partition, offset: (BigInt(last) + 1n).toString() }]);
      } catch (err) {
        emit({ event: 'commit_failed', member: name, error: String(err) });
        return;
      }
      resolveOffset(last);
      emit({
        event: 'consumed',
        member: name,
        records: batch.messages.map((m) => [batch.partition, Number(m.offset), m.value.toString()]),
      });
    },
  });
})().catch((err) => { emit({ event: 'error', member: name, error: String(err) }); process.exit(1); });
