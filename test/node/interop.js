#!/usr/bin/env node
// The Node.js interop program: drives the official RocketMQ 5 Node.js client
// (npm rocketmq-client-nodejs, pinned in package.json) through one scenario
// against an endpoint and prints one JSON object per line for each event.
//
//   node interop.js SCENARIO --endpoint 127.0.0.1:8081 --topic T --group G
//       [--count N] [--groups K] [--delay-ms D] [--consumer simple|push]
//       [--linger-ms L] [--timeout-ms T] [--invisible-ms I]
//
// Scenarios: normal, fifo, delay, transaction. The simple consumer receives
// with an invisible duration of I ms (default 30000) and acks each message.
// The client runs with its
// default settings (plaintext). Errors go to stderr with a non-zero exit.
'use strict';

const {
  Producer, SimpleConsumer, PushConsumer, ConsumeResult, FilterExpression,
} = require('rocketmq-client-nodejs');
// The client exports no TransactionResolution of its own; its checker
// interface returns the protocol enum, which the package ships here.
const { TransactionResolution } = require('rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb');

function parseArgs(argv) {
  const [ scenario, ...rest ] = argv;
  const opts = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    let key = a.slice(2);
    let value;
    const eq = key.indexOf('=');
    if (eq >= 0) {
      value = key.slice(eq + 1);
      key = key.slice(0, eq);
    } else {
      if (i + 1 >= rest.length) throw new Error(`missing value for ${a}`);
      value = rest[++i];
    }
    opts[key] = value;
  }
  for (const k of [ 'endpoint', 'topic', 'group' ]) {
    if (!opts[k]) throw new Error(`--${k} is required`);
  }
  return { scenario, opts };
}

function emit(event, fields) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

function sortedObject(map) {
  const o = {};
  for (const k of [ ...map.keys() ].sort()) o[k] = map.get(k);
  return o;
}

class Run {
  constructor(scenario, opts) {
    this.scenario = scenario;
    this.opts = opts;
    this.topic = opts.topic;
    this.group = opts.group;
    this.count = Number(opts.count ?? 20);
    this.lingerMs = Number(opts['linger-ms'] ?? 1500);
    this.deadline = Date.now() + Number(opts['timeout-ms'] ?? 90000);
    this.invisibleMs = Number(opts['invisible-ms'] ?? 30000);
    this.received = new Set();
    this.waiters = [];
  }

  base() {
    // Default settings: sslEnabled is left unset (plaintext). The request
    // timeout is 10 s instead of 3 s: on a loaded 2-core test machine a
    // first send can take longer than 3 s, and the client then sends the
    // message again under the same id while the first copy was stored, a
    // duplicate that a FIFO scenario sees as broken order.
    return { endpoints: this.opts.endpoint, namespace: '', requestTimeout: 10000 };
  }

  onReceived(view, consumer) {
    const fields = {
      id: view.messageId,
      consumer,
      topic: view.topic,
      body: view.body.toString('utf8'),
      tag: view.tag ?? null,
      keys: view.keys,
      props: sortedObject(view.properties),
      group: view.messageGroup ?? null,
      attempt: view.deliveryAttempt,
      born: view.bornTimestamp ? view.bornTimestamp.getTime() : null,
      ts: Date.now(),
    };
    if (view.properties.has('seq')) fields.seq = Number(view.properties.get('seq'));
    if (view.deliveryTimestamp) fields.deliver_at = view.deliveryTimestamp.getTime();
    emit('received', fields);
    this.received.add(view.messageId);
    for (const w of this.waiters.splice(0)) w();
  }

  async startConsumer() {
    const kind = this.opts.consumer ?? 'simple';
    const subscriptions = new Map([[ this.topic, FilterExpression.SUB_ALL ]]);
    if (kind === 'push') {
      const c = new PushConsumer({
        ...this.base(),
        consumerGroup: this.group,
        subscriptions,
        messageListener: {
          consume: async view => {
            this.onReceived(view, 'push');
            return ConsumeResult.SUCCESS;
          },
        },
      });
      await c.startup();
      return {
        awaitAndClose: async want => {
          try {
            while (this.received.size < want) {
              const left = this.deadline - Date.now();
              if (left <= 0) throw new Error(`received ${this.received.size} of ${want} messages before the timeout`);
              await new Promise(resolve => {
                const t = setTimeout(resolve, left);
                this.waiters.push(() => { clearTimeout(t); resolve(); });
              });
            }
            // Linger: a duplicate or an unexpected message would show up now.
            await new Promise(resolve => setTimeout(resolve, this.lingerMs));
          } finally {
            await c.shutdown();
          }
        },
      };
    }
    if (kind !== 'simple') throw new Error(`unknown consumer ${kind}`);
    const c = new SimpleConsumer({
      ...this.base(),
      consumerGroup: this.group,
      subscriptions,
      awaitDuration: 2000,
    });
    await c.startup();
    return {
      awaitAndClose: async want => {
        try {
          let lingerUntil = Infinity;
          while (Date.now() < lingerUntil) {
            if (lingerUntil === Infinity && Date.now() > this.deadline) {
              throw new Error(`received ${this.received.size} of ${want} messages before the timeout`);
            }
            const views = await c.receive(16, this.invisibleMs);
            for (const v of views) {
              this.onReceived(v, 'simple');
              await c.ack(v);
              emit('acked', { id: v.messageId });
            }
            if (lingerUntil === Infinity && this.received.size >= want) {
              lingerUntil = Date.now() + this.lingerMs;
            }
          }
        } finally {
          await c.shutdown();
        }
      },
    };
  }

  async withProducer(options, fn) {
    const p = new Producer({ ...this.base(), topics: [ this.topic ], ...options });
    await p.startup();
    try {
      return await fn(p);
    } finally {
      await p.shutdown();
    }
  }

  async normal() {
    const consumer = await this.startConsumer();
    await this.withProducer({}, async p => {
      for (let i = 0; i < this.count; i++) {
        const tag = i % 2 === 0 ? 'TagA' : 'TagB';
        const body = `normal-node-${i}`;
        const keys = [ `k-${i}`, `order-${Math.floor(i / 10)}` ];
        const props = new Map([[ 'seq', String(i) ], [ 'lang', 'node' ], [ 'unicode', `ünï-${i}` ]]);
        const r = await p.send({ topic: this.topic, body: Buffer.from(body), tag, keys, properties: props });
        emit('sent', { id: r.messageId, seq: i, tag, keys, body, props: sortedObject(props) });
      }
    });
    await consumer.awaitAndClose(this.count);
  }

  async fifo() {
    const groups = Number(this.opts.groups ?? 3);
    const consumer = await this.startConsumer();
    await this.withProducer({}, async p => {
      for (let i = 0; i < this.count; i++) {
        const mg = `mg-${i % groups}`;
        const seq = Math.floor(i / groups);
        const body = `fifo-node-${mg}-${seq}`;
        const r = await p.send({
          topic: this.topic, body: Buffer.from(body), tag: 'fifo', keys: [ `k-${i}` ], messageGroup: mg,
          properties: new Map([[ 'seq', String(seq) ]]),
        });
        emit('sent', { id: r.messageId, group: mg, seq, body });
      }
    });
    await consumer.awaitAndClose(this.count);
  }

  async delay() {
    const delayMs = Number(this.opts['delay-ms'] ?? 3000);
    const consumer = await this.startConsumer();
    await this.withProducer({}, async p => {
      for (let i = 0; i < this.count; i++) {
        const body = `delay-node-${i}`;
        const at = Date.now() + delayMs;
        const r = await p.send({
          topic: this.topic, body: Buffer.from(body), tag: 'delay', keys: [ `k-${i}` ],
          deliveryTimestamp: new Date(at), properties: new Map([[ 'seq', String(i) ]]),
        });
        emit('sent', { id: r.messageId, seq: i, deliver_at: at, body });
      }
    });
    await consumer.awaitAndClose(this.count);
  }

  // Three half messages: "commit" is committed, "rollback" rolled back,
  // "unknown" left open so that the broker checks it back; the checker
  // answers COMMIT for it (and ROLLBACK for anything else it is asked).
  async transaction() {
    const consumer = await this.startConsumer();
    const checker = {
      async check(view) {
        const outcome = view.properties.get('outcome') ?? '';
        const resolution = outcome === 'unknown' ? TransactionResolution.COMMIT : TransactionResolution.ROLLBACK;
        emit('checked', { id: view.messageId, outcome, resolution: resolution === TransactionResolution.COMMIT ? 'COMMIT' : 'ROLLBACK' });
        return resolution;
      },
    };
    await this.withProducer({ checker }, async p => {
      for (const outcome of [ 'commit', 'rollback', 'unknown' ]) {
        const body = `tx-node-${outcome}`;
        const tx = p.beginTransaction();
        const r = await p.send({
          topic: this.topic, body: Buffer.from(body), tag: 'tx', keys: [ `k-${outcome}` ],
          properties: new Map([[ 'outcome', outcome ]]),
        }, tx);
        emit('sent', { id: r.messageId, outcome, body });
        if (outcome === 'commit') await tx.commit();
        if (outcome === 'rollback') await tx.rollback();
        emit('resolved', { id: r.messageId, outcome });
      }
      // The producer stays up (it answers the check-back) until both the
      // committed and the checked-back message have arrived.
      await consumer.awaitAndClose(2);
    });
  }
}

async function main() {
  const { scenario, opts } = parseArgs(process.argv.slice(2));
  const run = new Run(scenario, opts);
  if (![ 'normal', 'fifo', 'delay', 'transaction' ].includes(scenario)) {
    throw new Error(`unknown scenario ${scenario}`);
  }
  await run[scenario]();
  emit('done', {});
}

main().then(() => process.exit(0), err => {
  process.stderr.write(`node interop failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
