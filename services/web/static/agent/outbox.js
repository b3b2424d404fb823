// The phone agent's outbox: every event is kept in IndexedDB until the aggregator's ack covers
// its seq (end-to-end delivery, as edge/outbox.py on the Pi agent), so a reload, a closed tab or a
// broker that forgot everything loses nothing: what is still here is sent again. Bounded: beyond
// `maxEvents` the oldest of the lowest priority go (pattern detections last), counted. When the
// browser refuses to store (quota, private mode), events wait in memory and are counted as such.
const DB_NAME = 'soundalert-agent';
const STORE = 'outbox';
export const MAX_EVENTS = 20000;

function request(r) {
  return new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
}

function finished(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error('transaction aborted'));
  });
}

function openDb() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB_NAME, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE, { keyPath: ['site', 'node', 'seq'] });
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

export class Outbox {
  /** The outbox of one node; `open` it, then `put`, `after`, `acknowledge`, `remove`. */
  constructor(site, node, { maxEvents = MAX_EVENTS } = {}) {
    this.site = site;
    this.node = node;
    this.maxEvents = maxEvents;
    this.db = null;
    this.held = new Map(); // seq -> priority, for everything held (IndexedDB or memory), in seq order
    this.memory = new Map(); // seq -> record the browser refused to store
    this.dropped = 0; // over maxEvents
    this.problem = null;
  }

  async open() {
    try {
      this.db = await openDb();
      const records = await request(this.db.transaction(STORE).objectStore(STORE).getAll(this.range()));
      for (const r of records) this.held.set(r.seq, r.priority);
    } catch (err) {
      this.db = null;
      this.problem = `the browser cannot store events (${err.name || err}): they wait in memory`;
    }
    return this;
  }

  range(lo = 0, hi = Number.MAX_SAFE_INTEGER) {
    return IDBKeyRange.bound([this.site, this.node, lo], [this.site, this.node, hi]);
  }

  get depth() { return this.held.size; }

  get inMemory() { return this.memory.size; }

  firstSeq() { for (const seq of this.held.keys()) return seq; return null; }

  /** The lowest seq still held, `nextSeq` when none is (NodeStatus.pending_from_seq). */
  pendingFromSeq(nextSeq) { const first = this.firstSeq(); return first === null ? nextSeq : first; }

  /** Keep an event until delivered. The seq is held at once (callers need not await). */
  async put(event, priority) {
    const record = { site: this.site, node: this.node, seq: event.seq, priority, payload: JSON.stringify(event) };
    this.held.set(event.seq, priority);
    try {
      if (!this.db) throw new Error('no IndexedDB');
      const tx = this.db.transaction(STORE, 'readwrite');
      tx.objectStore(STORE).put(record);
      await finished(tx);
    } catch (err) {
      this.memory.set(event.seq, record);
      this.problem = `the browser cannot store events (${err.name || err}): they wait in memory`;
    }
    if (this.held.size > this.maxEvents) await this.dropOne();
  }

  async dropOne() {
    let victim = null; let lowest = Infinity;
    for (const [seq, priority] of this.held) if (priority < lowest) { lowest = priority; victim = seq; }
    await this.remove(victim);
    this.dropped += 1;
  }

  /** Up to `limit` held events with a seq above `afterSeq`, oldest first: [{seq, payload}]. */
  async after(afterSeq, limit) {
    let stored = [];
    if (this.db) {
      try {
        const store = this.db.transaction(STORE).objectStore(STORE);
        stored = await request(store.getAll(this.range(afterSeq + 1), limit));
      } catch (err) {
        this.problem = `the browser cannot read its stored events (${err.name || err})`;
      }
    }
    const all = [...stored.filter((r) => this.held.has(r.seq)), ...[...this.memory.values()].filter((r) => r.seq > afterSeq)];
    return all.sort((a, b) => a.seq - b.seq).slice(0, limit);
  }

  /** Everything up to `seq` is delivered: delete it. Returns how many were held. */
  async acknowledge(seq) {
    let covered = 0;
    for (const s of [...this.held.keys()]) if (s <= seq) { this.held.delete(s); this.memory.delete(s); covered += 1; }
    if (this.db && covered) await this.deleteRange(this.range(0, seq));
    return covered;
  }

  /** One event is delivered (broker delivery: its PUBACK). */
  async remove(seq) {
    this.held.delete(seq);
    this.memory.delete(seq);
    if (this.db) await this.deleteRange(this.range(seq, seq));
  }

  async deleteRange(range) {
    try {
      const tx = this.db.transaction(STORE, 'readwrite');
      tx.objectStore(STORE).delete(range);
      await finished(tx);
    } catch (err) {
      this.problem = `the browser cannot delete delivered events (${err.name || err})`;
    }
  }

  /** Heartbeat figures, with the Python agent's key names. */
  figures() {
    const out = { outbox_depth: this.depth, outbox_dropped: this.dropped, outbox_dropped_outbox_full: this.dropped,
      outbox_in_memory: this.inMemory };
    if (this.problem) out.outbox_problem = this.problem.slice(0, 200);
    return out;
  }
}
