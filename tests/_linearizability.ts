// A linearizability checker for histories recorded by multi-process tests.
//
// A history is a set of operations, each with the process that ran it, what it was
// (`kind`, `input`), what it returned (`output`) and when it was invoked and completed.
// It is linearizable with respect to a sequential model when each operation can be
// given one point in time between its invocation and its completion such that running
// the model through the operations in the order of their points gives every recorded
// output. No npm package offers such a checker (searched: none for JavaScript), so this
// is a small one: Wing & Gong's search with Lowe's just-in-time linearization and
// memoization of (set of operations linearized, model state), the algorithm of
// anishathalye/porcupine. Partitioning a history (P-compositionality) is NOT used: it is
// not valid for a FIFO queue, whose messages depend on each other through their order.
//
// Times. `invokedAt` and `completedAt` are in milliseconds on one clock for every
// process: `performance.timeOrigin + performance.now()`. Measured on this machine, that
// sum agrees across Deno processes to within about 0.05 ms (timeOrigin is taken from the
// wall clock at start, now() is monotonic): good enough to order operations that are
// tens of microseconds apart, on one machine, unless the wall clock is stepped while the
// processes start. performance.now() itself has sub-microsecond granularity here. Ties
// are treated conservatively: an operation that completes at the very time another is
// invoked is taken as concurrent with it, never as before it. `slackMs` widens every
// interval by that much on each side (for clocks that are less trustworthy): a wider
// interval can only make more histories linearizable, never fewer.
//
// Pending operations (no `completedAt`: the process crashed, timed out or was aborted
// mid-operation) may or may not have taken effect, at any point after their invocation,
// and their output is ignored.
//
// The search is bounded by a step budget (model steps); past it the answer is "unknown",
// never a hang. On failure the checker shrinks the history to a small witness: first the
// shortest failing prefix in time (linearizability is prefix-closed), then it turns each
// completed operation into a pending one if the history still fails without relying on
// its result. What remains cannot be linearized whatever the other operations did.

/** One operation of a history. */
export interface Operation {
  /** The process (or handle) that ran it: its operations never overlap in time. */
  process: number | string;
  /** What it was, e.g. `send`, `receive`, `trySend`, `tryReceive`, `lock`. */
  kind: string;
  /** Its argument (e.g. the message sent). */
  input?: unknown;
  /** What it returned (e.g. the message received, `true`/`false` for a try form). */
  output?: unknown;
  /** When it was invoked, in ms (see the module comment for the clock). */
  invokedAt: number;
  /** When it completed, in ms; absent when it never did (pending). */
  completedAt?: number;
}

/** A sequential specification. States must be treated as immutable. */
export interface Model<S> {
  /** For reports, e.g. `FIFO queue (capacity 2)`. */
  name: string;
  /** The operation kinds it knows. */
  kinds: readonly string[];
  /** The initial state. */
  init(): S;
  /**
   * The state after `op` takes effect in `state`, or `undefined` when `op` cannot take
   * effect there with the output it recorded. For a pending operation (`completedAt`
   * undefined) the output is unknown: any output is allowed.
   */
  step(state: S, op: Operation): S | undefined;
  /** A string equal for equal states and different for different ones. */
  key(state: S): string;
  /** Whether a history may end in `state` (default: any state). */
  final?(state: S): boolean;
  /** For reports. Default: the key. */
  describe?(state: S): string;
}

/** Options of {@link checkLinearizable}. */
export interface CheckOptions {
  /** Most model steps before giving up with "unknown". Default 1,000,000. */
  maxSteps?: number;
  /** Widen every interval by this many ms on each side. Default 0. */
  slackMs?: number;
  /** Shrink a failing history to a small witness. Default: true. */
  minimize?: boolean;
}

/** The answer of {@link checkLinearizable}. */
export type CheckResult =
  | {
    result: "ok";
    /** The operations that took effect, in an order that explains every output. */
    order: Operation[];
    steps: number;
  }
  | {
    result: "illegal";
    /** Completed operations that cannot be linearized together, by invocation time. */
    witness: Operation[];
    /** Operations of the history not in the witness. */
    omitted: number;
    /** The witness, one line per operation, and where the search got stuck. */
    report: string;
    steps: number;
  }
  | { result: "unknown"; reason: string; steps: number };

/** The clock of histories, in ms: `performance.timeOrigin + performance.now()`. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Runs `run` as one operation and appends its record to `history`: completed, with
 * `output(result)` as its output, or pending when it throws (a timed-out or aborted
 * operation is taken as one that may or may not have taken effect). Returns the result,
 * or rethrows. A caller whose contract says a failed operation took no effect (e.g. a
 * receive that timed out took nothing) should remove its record instead: the history
 * then claims that, and the search stays small (every pending operation doubles it).
 */
export async function record<T>(
  history: Operation[],
  operation: { process: number | string; kind: string; input?: unknown },
  run: () => T | Promise<T>,
  output: (result: T) => unknown = () => undefined,
): Promise<T> {
  const op: Operation = { ...operation, invokedAt: now() };
  history.push(op);
  const result = await run();
  op.completedAt = now();
  op.output = output(result);
  return result;
}

const DEFAULT_MAX_STEPS = 1_000_000;
// Shrinking runs the search once per operation of the failing prefix: past this many
// operations only the prefix is shortened.
const WEAKEN_LIMIT = 400;

type SearchOutcome =
  | { result: "ok"; order: number[]; steps: number }
  | { result: "illegal"; longest: number[]; stuckState: string; steps: number }
  | { result: "unknown"; steps: number };

function isPending(op: Operation): boolean {
  return op.completedAt === undefined;
}

// Wing & Gong / Lowe: depth-first over "which operation takes effect next", where the
// next one must have been invoked before every operation still to be placed completed;
// a (linearized set, state) pair seen before is not explored again.
function search<S>(model: Model<S>, ops: readonly Operation[], maxSteps: number): SearchOutcome {
  const n = ops.length;
  const byCall = ops.map((_, i) => i).sort((a, b) => ops[a].invokedAt - ops[b].invokedAt);
  const byReturn = ops.map((_, i) => i).filter((i) => !isPending(ops[i]))
    .sort((a, b) => ops[a].completedAt! - ops[b].completedAt!);
  const returnRank = new Int32Array(n).fill(-1);
  byReturn.forEach((op, rank) => returnRank[op] = rank);
  const callRank = new Int32Array(n);
  byCall.forEach((op, rank) => callRank[op] = rank);

  const linearized = new Uint8Array(n);
  const words = new Uint16Array(Math.ceil(n / 16));
  let callCursor = 0; // byCall[callCursor] is the first unlinearized in call order
  let returnCursor = 0; // byReturn[returnCursor]: the first unlinearized completion
  let completedLeft = byReturn.length;
  const seen = new Set<string>();
  const order: number[] = [];
  let longest: number[] = [];
  let longestCompleted = -1;
  let stuckState = model.describe?.(model.init()) ?? model.key(model.init());
  let steps = 0;

  const mark = (op: number) => {
    linearized[op] = 1;
    words[op >> 4] |= 1 << (op & 15);
    if (!isPending(ops[op])) completedLeft--;
    while (callCursor < n && linearized[byCall[callCursor]]) callCursor++;
    while (returnCursor < byReturn.length && linearized[byReturn[returnCursor]]) returnCursor++;
  };
  const unmark = (op: number) => {
    linearized[op] = 0;
    words[op >> 4] &= ~(1 << (op & 15));
    if (!isPending(ops[op])) completedLeft++;
    callCursor = Math.min(callCursor, callRank[op]);
    if (returnRank[op] >= 0) returnCursor = Math.min(returnCursor, returnRank[op]);
  };
  const candidates = (): number[] => {
    const deadline = returnCursor < byReturn.length
      ? ops[byReturn[returnCursor]].completedAt!
      : Infinity;
    const found: number[] = [];
    for (let rank = callCursor; rank < n; rank++) {
      const op = byCall[rank];
      if (ops[op].invokedAt > deadline) break; // ties count as concurrent
      if (!linearized[op]) found.push(op);
    }
    return found;
  };

  interface Frame {
    state: S;
    options: number[];
    next: number;
  }
  const stack: Frame[] = [{ state: model.init(), options: candidates(), next: 0 }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (completedLeft === 0 && (model.final?.(frame.state) ?? true)) {
      return { result: "ok", order: [...order], steps };
    }
    const completedDone = byReturn.length - completedLeft;
    if (completedDone > longestCompleted) {
      longestCompleted = completedDone;
      longest = [...order];
      stuckState = model.describe?.(frame.state) ?? model.key(frame.state);
    }
    let descended = false;
    while (frame.next < frame.options.length) {
      const op = frame.options[frame.next++];
      if (++steps > maxSteps) return { result: "unknown", steps };
      const after = model.step(frame.state, ops[op]);
      if (after === undefined) continue;
      mark(op);
      const key = `${String.fromCharCode(...words)}\u0000${model.key(after)}`;
      if (seen.has(key)) {
        unmark(op);
        continue;
      }
      seen.add(key);
      order.push(op);
      stack.push({ state: after, options: candidates(), next: 0 });
      descended = true;
      break;
    }
    if (!descended) {
      stack.pop();
      if (order.length > 0) unmark(order.pop()!);
    }
  }
  return { result: "illegal", longest, stuckState, steps };
}

function validate<S>(model: Model<S>, history: readonly Operation[]): void {
  history.forEach((op, i) => {
    if (!model.kinds.includes(op.kind)) {
      throw new TypeError(`Operation ${i}: ${model.name} has no operation "${op.kind}"`);
    }
    if (typeof op.invokedAt !== "number" || !Number.isFinite(op.invokedAt)) {
      throw new TypeError(`Operation ${i}: invokedAt must be a finite number`);
    }
    if (op.completedAt !== undefined) {
      if (typeof op.completedAt !== "number" || Number.isNaN(op.completedAt)) {
        throw new TypeError(`Operation ${i}: completedAt must be a number or absent`);
      }
      if (op.completedAt < op.invokedAt) {
        throw new RangeError(`Operation ${i}: completed (${op.completedAt}) before invoked`);
      }
    }
  });
}

function widen(history: readonly Operation[], slack: number): Operation[] {
  if (slack === 0) return [...history];
  return history.map((op) => ({
    ...op,
    invokedAt: op.invokedAt - slack,
    completedAt: op.completedAt === undefined ? undefined : op.completedAt + slack,
  }));
}

function pending(op: Operation): Operation {
  const { completedAt: _, output: __, ...rest } = op;
  return rest;
}

// The history as it stood at time `t`, with the operations in `weakened` made pending:
// the indices of the operations invoked by then, and those operations (the ones still
// running at `t` pending).
function variant(
  ops: readonly Operation[],
  t: number,
  weakened: ReadonlySet<number>,
): { indices: number[]; ops: Operation[] } {
  const indices = ops.map((_, i) => i).filter((i) => ops[i].invokedAt <= t);
  return {
    indices,
    ops: indices.map((i) => {
      const op = ops[i];
      const running = op.completedAt !== undefined && op.completedAt > t;
      return running || weakened.has(i) ? pending(op) : op;
    }),
  };
}

// Shrinking runs many searches: each gets at most this many steps, and all of them
// together at most SHRINK_TOTAL_STEPS; a search that runs out counts as "not shown
// illegal", so the witness stays correct, only less small.
const SHRINK_STEPS = 100_000;
const SHRINK_TOTAL_STEPS = 2_000_000;

class ShrinkBudget {
  #left = SHRINK_TOTAL_STEPS;
  constructor(readonly perSearch: number) {}
  get spent(): boolean {
    return this.#left <= 0;
  }
  illegal<S>(model: Model<S>, ops: Operation[]): boolean {
    const outcome = search(model, ops, Math.min(this.perSearch, Math.max(this.#left, 0)));
    this.#left -= outcome.steps;
    return outcome.result === "illegal";
  }
}

/**
 * Shrinks a failing history: the time of its shortest failing prefix, and the
 * operations whose results the failure does not need.
 */
function shrink<S>(
  model: Model<S>,
  ops: readonly Operation[],
  budget: number,
): { t: number; weakened: Set<number> } {
  // Linearizability is prefix-closed, so failure is monotone in t: bisect.
  const times = [...new Set(ops.flatMap((op) => [op.invokedAt, op.completedAt ?? -Infinity]))]
    .filter(Number.isFinite).sort((a, b) => a - b);
  const weakened = new Set<number>();
  const steps = new ShrinkBudget(Math.min(budget, SHRINK_STEPS));
  let low = 0;
  let high = times.length - 1; // the whole history fails
  while (low < high) {
    const middle = (low + high) >> 1;
    if (steps.illegal(model, variant(ops, times[middle], weakened).ops)) high = middle;
    else low = middle + 1;
  }
  const t = times[high];
  const { indices } = variant(ops, t, weakened);
  if (indices.length > WEAKEN_LIMIT) return { t, weakened };
  // An operation whose result the failure does not need becomes pending (it may or may
  // not have happened): the history still fails, so it fails whatever that one did.
  for (const i of indices.toReversed()) {
    if (steps.spent) break;
    if (isPending(ops[i]) || ops[i].completedAt! > t) continue;
    weakened.add(i);
    if (!steps.illegal(model, variant(ops, t, weakened).ops)) weakened.delete(i);
  }
  return { t, weakened };
}

/** A value for reports: strings quoted, bytes in hex. */
export function formatValue(value: unknown): string {
  if (value === undefined) return "undefined";
  if (value instanceof Uint8Array) {
    return `<${Array.from(value, (b) => b.toString(16).padStart(2, "0")).join(" ")}>`;
  }
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function formatOperation(op: Operation): string {
  const input = "input" in op && op.input !== undefined ? formatValue(op.input) : "";
  const call = `${op.kind}(${input})`;
  if (isPending(op)) return `${call} -> ? (pending)`;
  return "output" in op && op.output !== undefined ? `${call} -> ${formatValue(op.output)}` : call;
}

/**
 * One line per operation, by invocation time: process, operation, interval in ms from
 * `origin` (default: the first invocation).
 */
export function formatHistory(history: readonly Operation[], origin?: number): string {
  const sorted = [...history].sort((a, b) => a.invokedAt - b.invokedAt);
  origin ??= sorted.length > 0 ? sorted[0].invokedAt : 0;
  const processWidth = Math.max(7, ...sorted.map((op) => String(op.process).length));
  const calls = sorted.map(formatOperation);
  const callWidth = Math.max(...calls.map((call) => call.length), 0);
  return sorted.map((op, i) => {
    const from = (op.invokedAt - origin).toFixed(3).padStart(10);
    const to = isPending(op)
      ? "...".padStart(10)
      : (op.completedAt! - origin).toFixed(3).padStart(10);
    return `  ${String(op.process).padEnd(processWidth)}  ${calls[i].padEnd(callWidth)}  ` +
      `[${from} .. ${to}] ms`;
  }).join("\n");
}

/**
 * Checks that `history` is linearizable with respect to `model`. Deterministic; bounded
 * by `maxSteps` model steps (then "unknown").
 */
export function checkLinearizable<S>(
  model: Model<S>,
  history: readonly Operation[],
  options: CheckOptions = {},
): CheckResult {
  validate(model, history);
  const budget = options.maxSteps ?? DEFAULT_MAX_STEPS;
  const ops = widen(history, options.slackMs ?? 0);
  const outcome = search(model, ops, budget);
  if (outcome.result === "ok") {
    return { result: "ok", order: outcome.order.map((i) => history[i]), steps: outcome.steps };
  }
  if (outcome.result === "unknown") {
    return {
      result: "unknown",
      reason: `gave up after ${budget} model steps (${history.length} operations)`,
      steps: outcome.steps,
    };
  }
  const { t, weakened } = options.minimize ?? true
    ? shrink(model, ops, budget)
    : { t: Infinity, weakened: new Set<number>() };
  const shrunk = variant(ops, t, weakened);
  const failing = search(model, shrunk.ops, Math.min(budget, SHRINK_STEPS));
  const witness = shrunk.indices.filter((_, k) => !isPending(shrunk.ops[k]))
    .map((i) => history[i]);
  const omitted = history.length - witness.length;
  const lines = [
    `Not linearizable as a ${model.name}: these ${witness.length} operations cannot all ` +
    `have taken effect in any order that respects their times` +
    (omitted > 0
      ? `, whatever the other ${omitted} did (whether they took effect or not, with any result):`
      : ":"),
  ];
  const context = shrunk.indices.filter((_, k) => isPending(shrunk.ops[k])).map((i) => history[i]);
  const origin = Math.min(
    ...witness.map((op) => op.invokedAt),
    ...context.map((op) => op.invokedAt),
  );
  lines.push(formatHistory(witness, origin));
  if (context.length > 0) {
    const shown = context.sort((a, b) => a.invokedAt - b.invokedAt).slice(-20);
    lines.push(
      `The others invoked by then (as recorded; the failure holds whether or not they took effect):`,
      (context.length > shown.length ? "  ...\n" : "") + formatHistory(shown, origin),
    );
  }
  if (failing.result === "illegal") {
    const placed = failing.longest.map((k) => shrunk.ops[k]);
    const last = placed.slice(-6).map((op) => `${op.process}:${formatOperation(op)}`);
    lines.push(
      `The longest order that explains the start of it places ${placed.length} operations` +
        (placed.length > 0 ? ` (the last: ${last.join(", ")})` : "") +
        `; after them the ${model.name} is ${failing.stuckState} and no remaining one fits.`,
    );
  }
  return {
    result: "illegal",
    witness,
    omitted,
    report: lines.join("\n"),
    steps: outcome.steps,
  };
}

/** A key for a message value: equal messages get equal keys (bytes compare by content). */
export function valueKey(value: unknown): string {
  if (value instanceof Uint8Array) return `b:${Array.from(value).join(",")}`;
  if (value === undefined) return "u";
  return `j:${JSON.stringify(value)}`;
}

/** The state of {@link fifoQueue}: message keys, oldest first, and `end` calls so far. */
export interface QueueState {
  readonly items: readonly string[];
  readonly ends: number;
}

/**
 * A FIFO queue holding at most `capacity` messages (`Infinity`: unbounded).
 * - `send(m)`: blocks while full; completed means `m` was enqueued at its point.
 * - `trySend(m) -> true | false`: `false` only if the queue was full at its point.
 * - `receive() -> m`: blocks while empty; `m` was the head at its point.
 * - `tryReceive() -> m | undefined`: `undefined` only if the queue was empty at its point.
 * - `end()`: a producer is done. Once `producers` of them have ended (default 1) the
 *   stream is over: no send may follow, and `receive`/`tryReceive` return `null` once
 *   the queue is empty, never before.
 */
export function fifoQueue(capacity = Infinity, options: { producers?: number } = {}): Model<
  QueueState
> {
  if (!(capacity >= 1)) throw new RangeError(`Invalid capacity ${capacity}: use rendezvous()`);
  const producers = options.producers ?? 1;
  const over = (state: QueueState) => state.ends >= producers;
  const enqueue = (state: QueueState, op: Operation): QueueState | undefined =>
    state.items.length < capacity && !over(state)
      ? { items: [...state.items, valueKey(op.input)], ends: state.ends }
      : undefined;
  const dequeue = (state: QueueState, op: Operation): QueueState | undefined => {
    if (state.items.length === 0) {
      // Empty: only the end of the stream can complete a receive now.
      return over(state) && (isPending(op) || op.output === null) ? state : undefined;
    }
    if (!isPending(op) && state.items[0] !== valueKey(op.output)) return undefined;
    return { items: state.items.slice(1), ends: state.ends };
  };
  return {
    name: capacity === Infinity ? "FIFO queue (unbounded)" : `FIFO queue (capacity ${capacity})`,
    kinds: ["send", "trySend", "receive", "tryReceive", "end"],
    init: () => ({ items: [], ends: 0 }),
    step(state, op) {
      switch (op.kind) {
        case "send":
          return enqueue(state, op);
        case "trySend":
          if (isPending(op) || op.output === true) return enqueue(state, op);
          return op.output === false && state.items.length >= capacity && !over(state)
            ? state
            : undefined;
        case "receive":
          return dequeue(state, op);
        case "tryReceive":
          if (!isPending(op) && op.output === undefined) {
            return state.items.length === 0 && !over(state) ? state : undefined;
          }
          return dequeue(state, op);
        case "end":
          return over(state) ? undefined : { items: state.items, ends: state.ends + 1 };
      }
      return undefined;
    },
    key: (state) => `${state.ends}:${JSON.stringify(state.items)}`,
    describe: (state) =>
      `[${state.items.map((key) => key.slice(2)).join(", ")}]` + (over(state) ? " (ended)" : ""),
  };
}

interface Offer {
  message: string;
  /** When the send that made the offer completed (Infinity: pending). */
  deadline: number;
}

/**
 * A rendezvous channel (capacity 0): a send completes only after a receive took its
 * message. The exchange is one point that lies in both the send's interval and the
 * receive's. Modelled as: a send (or `trySend -> true`) linearizes first and puts up an
 * offer; the very next operation must be the receive that takes it (the state admits
 * nothing else), and that receive must have been invoked before the send completed, so
 * the two intervals share the exchange point. The order of exchanges is the order of
 * the points, as for a FIFO queue of length at most 1 that is never observed non-empty.
 * A history whose completed send was never received ends with the offer up: illegal.
 *
 * Weak spots, by design: whether a peer was *waiting* at some moment is not a point
 * event, so `trySend -> false` and `tryReceive -> undefined` are always allowed between
 * exchanges.
 */
export function rendezvous(): Model<Offer | null> {
  const offer = (state: Offer | null, op: Operation): Offer | undefined =>
    state === null
      ? { message: valueKey(op.input), deadline: op.completedAt ?? Infinity }
      : undefined;
  const take = (state: Offer | null, op: Operation): null | undefined => {
    if (state === null) return undefined;
    if (isPending(op)) return null;
    return state.message === valueKey(op.output) && op.invokedAt <= state.deadline
      ? null
      : undefined;
  };
  return {
    name: "rendezvous channel (capacity 0)",
    kinds: ["send", "trySend", "receive", "tryReceive"],
    init: () => null,
    step(state, op) {
      switch (op.kind) {
        case "send":
          return offer(state, op);
        case "trySend":
          if (isPending(op) || op.output === true) return offer(state, op);
          return op.output === false && state === null ? state : undefined;
        case "receive":
          return take(state, op);
        case "tryReceive":
          if (!isPending(op) && op.output === undefined) return state === null ? state : undefined;
          return take(state, op);
      }
      return undefined;
    },
    key: (state) => state === null ? "" : `${state.message}@${state.deadline}`,
    final: (state) => state === null,
    describe: (state) =>
      state === null ? "idle" : `offering ${state.message.slice(2)} with no receive to take it`,
  };
}

/**
 * A mutual-exclusion lock, not reentrant. `lock()` blocks while held; `tryLock() -> true
 * | false` is `false` only while someone holds it; `unlock()` only by its holder (the
 * operation's `process`). A holder that dies holding it keeps it in this model.
 */
export function mutex(): Model<string | null> {
  const acquire = (state: string | null, op: Operation) =>
    state === null ? String(op.process) : undefined;
  return {
    name: "mutex",
    kinds: ["lock", "tryLock", "unlock"],
    init: () => null,
    step(state, op) {
      switch (op.kind) {
        case "lock":
          return acquire(state, op);
        case "tryLock":
          if (isPending(op) || op.output === true) return acquire(state, op);
          return op.output === false && state !== null ? state : undefined;
        case "unlock":
          return state === String(op.process) ? null : undefined;
      }
      return undefined;
    },
    key: (state) => state ?? "",
    describe: (state) => state === null ? "free" : `held by ${state}`,
  };
}
