// kafkajs-compat drives a broker with KafkaJS for tests/compat/test_kafkajs.py.
//
//   node kafkajs-compat.js produce BROKERS TOPIC COUNT PARTITIONS [idempotent]
//   node kafkajs-compat.js consume BROKERS TOPIC COUNT GROUP
//
// produce sends COUNT records (acks=all; with "idempotent", KafkaJS's idempotent producer): record i
// goes to partition i % PARTITIONS with key "key-i", value "value-i" plus the bytes 0x00 0xff, a
// header "index"="i" and timestamp 1700000000000+i, in batches of 500, and prints one JSON line per
// acknowledged batch and partition ({partition, baseOffset, count}). consume joins GROUP (KafkaJS
// always consumes in a group), reads from the beginning and prints one JSON line per record (bytes
// as base64) until COUNT arrived, then commits and leaves. Any error: a line on stderr, exit 1.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

const BASE_TIMESTAMP_MS = 1700000000000
const TIMEOUT_MS = 60000

function fail (message) {
  process.stderr.write(`kafkajs-compat: ${message}\n`)
  process.exit(1)
}

async function produce (kafka, topic, count, partitions, idempotent) {
  const producer = kafka.producer({ idempotent, maxInFlightRequests: idempotent ? 1 : undefined, allowAutoTopicCreation: false })
  await producer.connect()
  for (let start = 0; start < count; start += 500) {
    const messages = []
    for (let i = start; i < Math.min(count, start + 500); i++) {
      messages.push({
        partition: i % partitions,
        key: `key-${i}`,
        value: Buffer.concat([Buffer.from(`value-${i}`), Buffer.from([0x00, 0xff])]),
        headers: { index: String(i) },
        timestamp: String(BASE_TIMESTAMP_MS + i)
      })
    }
    const results = await producer.send({ topic, messages, acks: -1 })
    for (const result of results) {
      if (result.errorCode !== 0) fail(`produce to partition ${result.partition}: error ${result.errorCode}`)
      process.stdout.write(JSON.stringify({ partition: result.partition, baseOffset: Number(result.baseOffset) }) + '\n')
    }
  }
  await producer.disconnect()
}

async function consume (kafka, topic, count, groupId) {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  let seen = 0
  let finish
  const done = new Promise((resolve) => { finish = resolve })
  const timer = setTimeout(() => fail(`timed out after ${seen} of ${count} records`), TIMEOUT_MS)
  await consumer.run({
    autoCommit: true,
    eachMessage: async ({ partition, message }) => {
      const headers = {}
      for (const [key, value] of Object.entries(message.headers || {})) headers[key] = Buffer.from(value).toString('base64')
      process.stdout.write(JSON.stringify({
        partition,
        offset: Number(message.offset),
        key: message.key === null ? null : message.key.toString('base64'),
        value: message.value === null ? null : message.value.toString('base64'),
        headers,
        timestamp_ms: Number(message.timestamp)
      }) + '\n')
      seen++
      if (seen >= count) finish()
    }
  })
  await done
  clearTimeout(timer)
  await consumer.commitOffsets([])
  await consumer.disconnect()
}

async function main () {
  const [mode, brokers, topic, countText, extra, flag] = process.argv.slice(2)
  const kafka = new Kafka({
    clientId: 'kafkajs-compat',
    brokers: brokers.split(','),
    logLevel: logLevel.ERROR,
    retry: { retries: 5 }
  })
  const count = Number(countText)
  if (mode === 'produce') await produce(kafka, topic, count, Number(extra), flag === 'idempotent')
  else if (mode === 'consume') await consume(kafka, topic, count, extra)
  else fail(`unknown mode ${mode}`)
}

main().then(() => process.exit(0), (error) => fail(error && error.stack ? error.stack : String(error)))
