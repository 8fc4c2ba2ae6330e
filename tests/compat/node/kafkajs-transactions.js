// kafkajs-transactions drives a broker with KafkaJS's transactional producer for
// tests/compat/test_kafkajs_transactions.py.
//
//   node kafkajs-transactions.js BROKERS TOPIC PARTITIONS TRANSACTIONAL_ID GROUP
//
// Three transactions, each sending 3 records "NAME-P-I" (key NAME) to every partition and the offset
// of (TOPIC, 0) for GROUP with sendOffsets: "first" (offset 3) committed, "aborted" (offset 99)
// aborted, "second" (offset 6) committed. Prints one JSON line per acknowledged partition of each
// send ({transaction, partition, baseOffset}). Then a KafkaJS consumer (read_committed, KafkaJS's
// default) joins GROUP + "-reader", reads the topic from the beginning and prints one JSON line per
// record ({partition, offset, key, value}) until it has as many records as were committed (an aborted
// record, were it delivered, comes before the last committed ones of its partition, and so shows in
// them), then leaves. Any error: a line on stderr, exit 1.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

const TIMEOUT_MS = 60000
const PER_PARTITION = 3

function fail (message) {
  process.stderr.write(`kafkajs-transactions: ${message}\n`)
  process.exit(1)
}

async function transaction (producer, topic, partitions, name, group, offset, end) {
  const txn = await producer.transaction()
  const messages = []
  for (let i = 0; i < PER_PARTITION; i++) {
    for (let p = 0; p < partitions; p++) messages.push({ partition: p, key: name, value: `${name}-${p}-${i}` })
  }
  const results = await txn.send({ topic, messages, acks: -1 })
  for (const result of results) {
    if (result.errorCode !== 0) fail(`${name}: produce to partition ${result.partition}: error ${result.errorCode}`)
    process.stdout.write(JSON.stringify({ transaction: name, partition: result.partition, baseOffset: Number(result.baseOffset) }) + '\n')
  }
  await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions: [{ partition: 0, offset: String(offset) }] }] })
  if (end === 'commit') await txn.commit()
  else await txn.abort()
}

async function readCommitted (kafka, topic, groupId, count) {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  let seen = 0
  let finish
  const done = new Promise((resolve) => { finish = resolve })
  const timer = setTimeout(() => fail(`read_committed: timed out after ${seen} of ${count} records`), TIMEOUT_MS)
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      process.stdout.write(JSON.stringify({
        partition,
        offset: Number(message.offset),
        key: message.key === null ? null : message.key.toString(),
        value: message.value === null ? null : message.value.toString()
      }) + '\n')
      seen++
      if (seen >= count) finish()
    }
  })
  await done
  clearTimeout(timer)
  await consumer.disconnect()
}

async function main () {
  const [brokers, topic, partitionsText, transactionalId, group] = process.argv.slice(2)
  const partitions = Number(partitionsText)
  const kafka = new Kafka({
    clientId: 'kafkajs-transactions',
    brokers: brokers.split(','),
    logLevel: logLevel.ERROR,
    retry: { retries: 8 }
  })
  const producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  await producer.connect()
  await transaction(producer, topic, partitions, 'first', group, 3, 'commit')
  await transaction(producer, topic, partitions, 'aborted', group, 99, 'abort')
  await transaction(producer, topic, partitions, 'second', group, 6, 'commit')
  await producer.disconnect()
  await readCommitted(kafka, topic, `${group}-reader`, 2 * PER_PARTITION * partitions)
}

main().then(() => process.exit(0), (error) => fail(error && error.stack ? error.stack : String(error)))
