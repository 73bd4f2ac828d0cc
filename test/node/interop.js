#!/usr/bin/env node
// The Node.js interop program: drives the official RocketMQ 5 Node.js client
// (npm rocketmq-client-nodejs, pinned in package.json) through one scenario
// against an endpoint and prints one JSON object per line for each event.
//
//   node interop.js SCENARIO --endpoint 127.0.0.1:8081 --topic T --group G
//       [--count N] [--groups K] [--delay-ms D] [--consumer simple|push]
//       [--linger-ms L] [--timeout-ms T] [--invisible-ms I]
//
// Scenarios: normal, fifo, delay (with --recall 1, one more delay message is
// sent first and recalled), transaction, filter, invisible (see the methods
// below). The simple consumer receives
// with an invisible duration of I ms (default 30000) and acks each message.
// The client runs with its
// default settings (plaintext). Errors go to stderr with a non-zero exit.
'use strict';

const {
  Producer, SimpleConsumer, PushConsumer, ConsumeResult, FilterExpression,
} = require('rocketmq-client-nodejs');
// The client exports no TransactionResolution of its own; its checker
// interface returns the protocol enum, which the package ships here.
const { TransactionResolution, FilterType } = require('rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb');

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
      if (this.opts.recall === '1') {
        // Due before the others: had the recall not taken, it would arrive
        // before them.
        const body = 'recall-node';
        const r = await p.send({
          topic: this.topic, body: Buffer.from(body), tag: 'delay', keys: [ 'k-recall' ],
          deliveryTimestamp: new Date(Date.now() + delayMs),
        });
        const recalled = await p.recallMessage(this.topic, r.recallHandle);
        emit('recalled', { id: r.messageId, answer: recalled.messageId, body });
      }
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

  // filter: six messages, message i tagged TagA, TagB or TagC (i % 3) with
  // the properties color (red for an even i, else blue) and n (i); one
  // simple consumer (group G-tag) subscribes with the tag expression
  // "TagA||TagC", another (group G-sql) with the SQL92 expression
  // "color = 'red' AND n >= 2". Each receives until it has --tag-want and
  // --sql-want messages, then both linger.
  async filter() {
    const want = { tag: Number(this.opts['tag-want']), sql: Number(this.opts['sql-want']) };
    const consumers = {
      tag: new SimpleConsumer({
        ...this.base(), consumerGroup: `${this.group}-tag`, awaitDuration: 1000,
        subscriptions: new Map([[ this.topic, new FilterExpression('TagA||TagC') ]]),
      }),
      sql: new SimpleConsumer({
        ...this.base(), consumerGroup: `${this.group}-sql`, awaitDuration: 1000,
        subscriptions: new Map([[ this.topic, new FilterExpression("color = 'red' AND n >= 2", FilterType.SQL) ]]),
      }),
    };
    for (const c of Object.values(consumers)) await c.startup();
    try {
      await this.withProducer({}, async p => {
        for (let i = 0; i < 6; i++) {
          const tag = `Tag${'ABC'[i % 3]}`;
          const body = `filter-node-${i}`;
          const props = new Map([[ 'color', i % 2 === 0 ? 'red' : 'blue' ], [ 'n', String(i) ], [ 'seq', String(i) ]]);
          const r = await p.send({ topic: this.topic, body: Buffer.from(body), tag, keys: [ `k-${i}` ], properties: props });
          emit('sent', { id: r.messageId, seq: i, tag, body, props: sortedObject(props) });
        }
      });
      const got = { tag: new Set(), sql: new Set() };
      let lingerUntil = Infinity;
      while (Date.now() < lingerUntil) {
        for (const [ name, c ] of Object.entries(consumers)) {
          for (const v of await c.receive(16, this.invisibleMs)) {
            this.onReceived(v, name);
            got[name].add(v.messageId);
            await c.ack(v);
            emit('acked', { id: v.messageId });
          }
        }
        if (lingerUntil === Infinity) {
          if (got.tag.size >= want.tag && got.sql.size >= want.sql) {
            lingerUntil = Date.now() + this.lingerMs;
          } else if (Date.now() > this.deadline) {
            throw new Error(`received ${got.tag.size} of ${want.tag} (tag) and ${got.sql.size} of ${want.sql} (sql) before the timeout`);
          }
        }
      }
    } finally {
      for (const c of Object.values(consumers)) await c.shutdown();
    }
  }

  // invisible: two messages, "extend" and "shorten". A simple consumer
  // receives them; it changes the invisible duration of "extend" to twice
  // its own and then acks it (with the receipt handle the change returned);
  // it changes that of "shorten" to 1 s ("changing" event before the call,
  // "changed" after) and does not ack it, receives it again (delivery
  // attempt 2) and acks it then.
  async invisible() {
    const c = new SimpleConsumer({
      ...this.base(), consumerGroup: this.group, awaitDuration: 2000,
      subscriptions: new Map([[ this.topic, FilterExpression.SUB_ALL ]]),
    });
    await c.startup();
    try {
      await this.withProducer({}, async p => {
        for (const kase of [ 'extend', 'shorten' ]) {
          const body = `invisible-node-${kase}`;
          const r = await p.send({
            topic: this.topic, body: Buffer.from(body), tag: 'inv', keys: [ `k-${kase}` ],
            properties: new Map([[ 'case', kase ]]),
          });
          emit('sent', { id: r.messageId, case: kase, body });
        }
      });
      const done = new Set();
      let lingerUntil = Infinity;
      while (Date.now() < lingerUntil) {
        if (lingerUntil === Infinity && Date.now() > this.deadline) {
          throw new Error(`settled ${[ ...done ]} of extend and shorten before the timeout`);
        }
        for (const v of await c.receive(16, this.invisibleMs)) {
          this.onReceived(v, 'simple');
          const kase = v.properties.get('case') ?? '';
          if (kase === 'shorten' && v.deliveryAttempt === 1) {
            emit('changing', { id: v.messageId, case: kase, ts: Date.now() });
            await c.changeInvisibleDuration(v, 1000);
            emit('changed', { id: v.messageId, case: kase });
            continue;
          }
          if (kase === 'extend') {
            await c.changeInvisibleDuration(v, 2 * this.invisibleMs);
            emit('changed', { id: v.messageId, case: kase });
          }
          await c.ack(v);
          emit('acked', { id: v.messageId });
          done.add(kase);
        }
        if (lingerUntil === Infinity && done.size === 2) lingerUntil = Date.now() + this.lingerMs;
      }
    } finally {
      await c.shutdown();
    }
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
  if (![ 'normal', 'fifo', 'delay', 'transaction', 'filter', 'invisible' ].includes(scenario)) {
    throw new Error(`unknown scenario ${scenario}`);
  }
  await run[scenario]();
  emit('done', {});
}

main().then(() => process.exit(0), err => {
  process.stderr.write(`node interop failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
