// Child process of the export fuzz (tests/export_fuzz_test.ts): calls every public
// function, constructor and method exported from mod.ts with fast-check arbitrary
// arguments, and prints one JSON summary line on stdout.
//   RUNS_PER_CALLABLE SEED CALL_TIMEOUT_MS TEMP_DIRECTORY
//
// Each call ends in one of:
//   ok       it returned (or its promise settled) with a value;
//   typed    it threw a library error class exported from mod.ts (ErrnoError and its
//            subclasses, CorruptedError, ...), a Deno.errors error (the OS refused, e.g.
//            ConnectionRefused) or an AbortError/TimeoutError DOMException;
//   named    it threw a TypeError or RangeError whose message names one of the callable's
//            parameters or one of the option names of their types (as `deno doc` lists
//            them), case-insensitively, either as written ("byteOffset") or as words
//            ("byte offset");
//   waiting  a free or static function's promise still pending after the per-call
//            timeout when the call gave no `timeout` option: it waits because it was
//            asked to (e.g. waitForSignal with no timeout);
//   unclear  any other error: a failure;
//   hang     a promise still pending after the timeout and, for a method, after the
//            handle was closed too (close() must end every pending call); or a free
//            function given a timeout that did not keep it: a failure.
// A crash (death by a signal) or a synchronous hang is seen by the parent as the exit
// status or its own timeout; the label of the call in progress is on stderr.
//
// Not called with random arguments, because they act on other processes or the system
// rather than on objects this process owns: sendSignal, sendSignalToGroup and
// raiseSignal (real signals to real pids; tests run as root), spawnWithPipes and
// spawnWithPipePair (run commands), Bootstrap.connect (starts a daemon). Fifo paths are confined to TEMP_DIRECTORY. An `fd`
// argument below 1023 becomes 1023 (not open): a PipeReader or PipeWriter takes over the
// descriptor it is given and closes it, and one made over a descriptor this process
// already uses would close that (stdout and this report; the runtime's signal pipe, and
// with it the process: seed 1033055489 made `new PipeWriter(7)` and Deno panicked). The summary goes to TEMP_DIRECTORY/summary.json.
import fc from "fast-check";
import * as ipc from "../../mod.ts";

const [runsText, seedText, timeoutText, temporary] = Deno.args;
const RUNS = Number(runsText);
const SEED = Number(seedText);
const CALL_TIMEOUT_MS = Number(timeoutText);
Deno.chdir(temporary);

const EXCLUDED = new Set([
  "sendSignal",
  "sendSignalToGroup",
  "raiseSignal",
  "spawnWithPipes",
  "spawnWithPipePair",
  // Would remove every dead process's objects on the machine, other test runs' included
  // (its argument checks are pinned in tests/introspect_test.ts).
  "cleanupDead",
  "Bootstrap.connect",
]);

// ---------------------------------------------------------------------------------------
// Parameter and option names, from `deno doc --json mod.ts`.

// deno-lint-ignore no-explicit-any
type Json = { [key: string]: any };
const modUrl = new URL("../../mod.ts", import.meta.url);
const docOutput = new Deno.Command(Deno.execPath(), {
  args: ["doc", "--json", modUrl.pathname],
  stdout: "piped",
  stderr: "null",
}).outputSync();
const doc = JSON.parse(new TextDecoder().decode(docOutput.stdout));
const symbols: Json[] = (Object.values(doc.nodes)[0] as Json).symbols;
const declarations = new Map<string, Json>();
for (const symbol of symbols) declarations.set(symbol.name, symbol.declarations[0]);

// Names an options type offers: properties of interfaces and object types it refers to.
function namesOfType(type: Json | undefined, seen = new Set<string>()): string[] {
  if (!type) return [];
  const names: string[] = [];
  switch (type.kind) {
    case "typeRef": {
      const name = type.value.typeName as string;
      if (seen.has(name)) break;
      seen.add(name);
      const declaration = declarations.get(name);
      if (declaration?.kind === "interface") {
        for (const property of declaration.def.properties ?? []) names.push(property.name);
        for (const base of declaration.def.extends ?? []) names.push(...namesOfType(base, seen));
      } else if (declaration?.kind === "typeAlias") {
        names.push(...namesOfType(declaration.def.tsType, seen));
      }
      for (const argument of type.value.typeParams ?? []) {
        names.push(...namesOfType(argument, seen));
      }
      break;
    }
    case "typeLiteral":
      for (const property of type.value.properties ?? []) names.push(property.name);
      break;
    case "union":
    case "intersection":
      for (const member of type.value) names.push(...namesOfType(member, seen));
      break;
    case "array":
      names.push(...namesOfType(type.value, seen));
      break;
    case "optional":
    case "parenthesized":
      names.push(...namesOfType(type.value, seen));
      break;
  }
  return names;
}

interface Parameter {
  names: string[]; // the parameter's own name, then option names
  options: string[]; // option names alone (for generating option objects)
  rest: boolean;
}

function parametersOf(functionDef: Json): Parameter[] {
  return (functionDef.params ?? []).map((param: Json) => {
    const inner = param.kind === "assign" ? param.left : param;
    const name = inner.kind === "rest" ? inner.arg?.name : inner.name;
    const type = inner.tsType ?? (inner.kind === "rest" ? inner.tsType : undefined) ??
      param.tsType;
    const options = namesOfType(type);
    return { names: [name ?? "arguments", ...options], options, rest: inner.kind === "rest" };
  });
}

interface ClassDoc {
  base: string | undefined;
  // undefined: not public; null: not declared (the base class's constructor applies)
  constructorParameters: Parameter[] | undefined | null;
  methods: Map<string, Parameter[]>; // "static name" or "name"
  hidden: Set<string>; // private and protected methods (callable in JS, not public API)
}

const classes = new Map<string, ClassDoc>();
const functions = new Map<string, Parameter[]>();
for (const symbol of symbols) {
  const declaration = symbol.declarations[0];
  if (declaration.kind === "function") {
    functions.set(symbol.name, parametersOf(declaration.def));
  } else if (declaration.kind === "class") {
    const def = declaration.def;
    const constructor = (def.constructors ?? [])[0];
    const methods = new Map<string, Parameter[]>();
    const hidden = new Set<string>();
    for (const method of def.methods ?? []) {
      const key = `${method.isStatic ? "static " : ""}${method.name}`;
      if (method.accessibility === "private" || method.accessibility === "protected") {
        hidden.add(key);
      } else if (method.kind === "method") {
        methods.set(key, parametersOf(method.functionDef));
      }
    }
    classes.set(symbol.name, {
      base: typeof def.extends === "string" ? def.extends : undefined,
      constructorParameters: constructor === undefined
        ? null
        : constructor.accessibility === "private" || constructor.accessibility === "protected"
        ? undefined
        : parametersOf(constructor),
      methods,
      hidden,
    });
  }
}

function constructorParameters(className: string): Parameter[] | undefined {
  for (let name: string | undefined = className; name; name = classes.get(name)?.base) {
    const declared = classes.get(name)?.constructorParameters;
    if (declared !== null) return declared;
  }
  return [];
}

function isHidden(className: string, key: string): boolean {
  for (let name: string | undefined = className; name; name = classes.get(name)?.base) {
    if (classes.get(name)?.hidden.has(key)) return true;
  }
  return false;
}

function methodParameters(className: string, key: string): Parameter[] | undefined {
  for (let name: string | undefined = className; name; name = classes.get(name)?.base) {
    const found = classes.get(name)?.methods.get(key);
    if (found) return found;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Instances to call methods on: a fresh one per call, removed afterwards.

interface Instance {
  // deno-lint-ignore no-explicit-any
  value: any;
  cleanup: () => unknown;
}

const quietly = async (step: () => unknown) => {
  try {
    await step();
  } catch { /* already closed or removed */ }
};
const removeName = (kind: { unlink(name: string): void }, name: string) =>
  quietly(() => kind.unlink(name));
const tcp = { transport: "tcp" as const, hostname: "127.0.0.1", port: 0 };
let namespaceCounter = 0;

const factories: Record<string, () => Promise<Instance> | Instance> = {
  SharedMemory: () => {
    const shm = ipc.SharedMemory.create({ size: 64 });
    return { value: shm, cleanup: () => (shm.close(), removeName(ipc.SharedMemory, shm.name)) };
  },
  NamedSemaphore: () => {
    const sem = ipc.NamedSemaphore.create({ value: 1 });
    return { value: sem, cleanup: () => (sem.close(), removeName(ipc.NamedSemaphore, sem.name)) };
  },
  UnnamedSemaphore: () => {
    const shm = ipc.SharedMemory.create({ size: 64 });
    const sem = ipc.UnnamedSemaphore.init(shm, { value: 1 });
    return {
      value: sem,
      cleanup: () => (sem.close(), shm.close(), removeName(ipc.SharedMemory, shm.name)),
    };
  },
  Mutex: () => {
    const mutex = ipc.Mutex.create();
    const name = mutex.name;
    return { value: mutex, cleanup: () => (mutex.close(), removeName(ipc.NamedSemaphore, name)) };
  },
  MessageRing: () => {
    const ring = ipc.MessageRing.create({ capacity: 256 });
    return { value: ring, cleanup: () => (ring.close(), removeName(ipc.MessageRing, ring.name)) };
  },
  BoundedBuffer: () => {
    const buffer = ipc.BoundedBuffer.create({ bufferSize: 2, itemSize: 4 });
    return {
      value: buffer,
      cleanup: () => (buffer.close(), removeName(ipc.SharedMemory, buffer.name)),
    };
  },
  SemaphoreBoundedBuffer: () => {
    const buffer = ipc.SemaphoreBoundedBuffer.create({ bufferSize: 2, itemSize: 4 });
    return {
      value: buffer,
      cleanup: () => (buffer.close(), removeName(ipc.SharedMemory, buffer.name)),
    };
  },
  Doorbell: () => {
    const bell = ipc.Doorbell.create();
    return { value: bell, cleanup: () => (bell.close(), removeName(ipc.SharedMemory, bell.name)) };
  },
  PipeReader: () => {
    const { reader, writer } = ipc.createPipe();
    return { value: reader, cleanup: () => (reader.close(), writer.close()) };
  },
  PipeWriter: () => {
    const { reader, writer } = ipc.createPipe();
    return { value: writer, cleanup: () => (reader.close(), writer.close()) };
  },
  MessageQueue: () => {
    const queue = ipc.MessageQueue.create();
    // remove() of a closed handle is refused: remove through a fresh one.
    return {
      value: queue,
      cleanup: () => quietly(() => ipc.MessageQueue.fromId(queue.id).remove()),
    };
  },
  QueueMessage: () => ({
    value: new ipc.QueueMessage(1, new Uint8Array([123, 125])),
    cleanup() {},
  }),
  PosixMessageQueue: () => {
    const queue = ipc.PosixMessageQueue.create({ maxMessages: 2, messageSize: 64 });
    return {
      value: queue,
      cleanup: () => (queue.close(), removeName(ipc.PosixMessageQueue, queue.name)),
    };
  },
  Mailbox: () => {
    const box = ipc.Mailbox.create({ capacity: 2 });
    const name = box.name;
    return { value: box, cleanup: () => (box.close(), quietly(() => ipc.Mailbox.delete(name))) };
  },
  MailboxMessage: () => ({
    value: new ipc.MailboxMessage(new Uint8Array([123, 125]), { pid: 1, name: "x" }, "x"),
    cleanup() {},
  }),
  DirectEndpoint: () => {
    const options = { name: "fuzz", namespace: `fuzz${Deno.pid}n${namespaceCounter++}` };
    const endpoint = ipc.DirectEndpoint.open(options);
    return {
      value: endpoint,
      cleanup: async () => {
        endpoint.close();
        // unlink() of a closed handle is refused: remove through a fresh one, once the
        // closed one has let go of the name (a wait slice in flight holds it ~100 ms).
        for (let attempt = 0;; attempt++) {
          try {
            using again = ipc.DirectEndpoint.open(options);
            again.unlink();
            return;
          } catch (error) {
            if (!(error instanceof ipc.AlreadyExistsError) || attempt > 100) throw error;
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        }
      },
    };
  },
  DatagramSocket: () => {
    const socket = ipc.DatagramSocket.bind();
    return { value: socket, cleanup: () => socket.close() };
  },
  FramedServer: () => {
    const server = ipc.FramedServer.listen(tcp);
    return { value: server, cleanup: () => server.close() };
  },
  FramedConnection: async () => {
    const server = ipc.FramedServer.listen(tcp);
    const connection = await ipc.FramedConnection.connect(server.address);
    const accepted = await server.accept();
    return {
      value: connection,
      cleanup: () => (connection.close(), accepted.close(), server.close()),
    };
  },
  Matchmaker: () => {
    const matchmaker = ipc.Matchmaker.listen(tcp);
    return { value: matchmaker, cleanup: () => matchmaker.close() };
  },
  RpcServer: () => {
    const server = ipc.RpcServer.listen(tcp, { echo: (x: unknown) => x });
    return { value: server, cleanup: () => server.close() };
  },
  RpcClient: async () => {
    const server = ipc.RpcServer.listen(tcp, { echo: (x: unknown) => x });
    const client = await ipc.RpcClient.connect(server.address);
    return { value: client, cleanup: () => (client.close(), server.close()) };
  },
};

// ---------------------------------------------------------------------------------------
// Arguments.

const anything = fc.anything({
  maxDepth: 2,
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withNullPrototype: true,
  withObjectString: true,
  withSet: true,
  withSparseArray: true,
  withTypedArray: true,
  withUnicodeString: true,
});
const special = fc.constantFrom<unknown>(
  undefined,
  null,
  Symbol("fuzz"),
  Object.create(null),
  () => {},
  NaN,
  -1,
  0,
  1,
  2 ** 31,
  -(2 ** 53),
  Infinity,
  1.5,
  1n,
  "",
  "/",
  "\0",
  "x".repeat(300),
  new Uint8Array(0),
  new Uint8Array(70_000),
  [],
  {},
  { toString: null },
  new ArrayBuffer(8),
);
const plausibleString = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ maxLength: 12 }).map((s) => `/fuzz-${s}`),
);
const value: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: anything, weight: 3 },
  { arbitrary: special, weight: 3 },
  { arbitrary: plausibleString, weight: 1 },
  { arbitrary: fc.integer({ min: -5, max: 70_000 }), weight: 1 },
);

function argumentFor(parameter: Parameter): fc.Arbitrary<unknown> {
  if (parameter.options.length === 0) return value;
  const options = fc.dictionary(fc.constantFrom(...parameter.options), value, { maxKeys: 3 });
  return fc.oneof({ arbitrary: value, weight: 1 }, { arbitrary: options, weight: 2 });
}

function argumentsFor(parameters: Parameter[]): fc.Arbitrary<unknown[]> {
  const each = parameters.map(argumentFor);
  return fc.tuple(fc.nat({ max: parameters.length + 1 }), fc.tuple(...each), value)
    .map(([count, args, extra]) => [...args, extra].slice(0, count));
}

// ---------------------------------------------------------------------------------------
// Calling and judging.

// deno-lint-ignore no-explicit-any
const exportedErrorClasses: (abstract new (...args: any[]) => Error)[] = Object.values(ipc)
  .filter((entry) => typeof entry === "function" && entry.prototype instanceof Error) as never;

function words(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase();
}

function namesArgument(message: string, parameters: Parameter[]): boolean {
  const text = message.toLowerCase();
  return parameters.some((parameter) =>
    parameter.names.some((name) =>
      name.length > 0 && (text.includes(name.toLowerCase()) || text.includes(words(name)))
    )
  );
}

type Outcome = "ok" | "typed" | "named" | "waiting" | "unclear" | "hang";

function judge(error: unknown, parameters: Parameter[]): Outcome {
  if (exportedErrorClasses.some((ErrorClass) => error instanceof ErrorClass)) return "typed";
  if (Object.values(Deno.errors).some((ErrorClass) => error instanceof ErrorClass)) {
    return "typed";
  }
  if (error instanceof DOMException && ["AbortError", "TimeoutError"].includes(error.name)) {
    return "typed";
  }
  if (error instanceof TypeError || error instanceof RangeError) {
    return namesArgument(error.message, parameters) ? "named" : "unclear";
  }
  return "unclear";
}

const PENDING = Symbol("pending");
function settleWithin(promise: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.then((v) => v, (e) => Promise.reject(e)),
    new Promise((resolve) => timer = setTimeout(() => resolve(PENDING), ms)),
  ]).finally(() => clearTimeout(timer));
}

function describeArgs(args: unknown[]): string {
  return fc.stringify(args).slice(0, 300);
}

function givesTimeout(args: unknown[]): boolean {
  return args.some((arg) =>
    arg !== null && typeof arg === "object" && typeof (arg as { timeout?: unknown }).timeout ===
      "number"
  );
}

// Objects a call made (e.g. SharedMemory.create({ size: 5 }) from a generated options
// object) are closed and removed, so that nothing is left in /dev/shm.
async function dispose(result: unknown, depth = 0): Promise<void> {
  if (result === null || typeof result !== "object" || depth > 1) return;
  if (result instanceof Map || result instanceof Set || ArrayBuffer.isView(result)) return;
  // deno-lint-ignore no-explicit-any
  const handle = result as Record<string, any>;
  let handled = false;
  for (const remove of ["unlink", "delete", "remove", "close"]) {
    if (typeof handle[remove] === "function") {
      handled = true;
      await quietly(() => handle[remove]());
    }
  }
  if (!handled) { for (const value of Object.values(handle)) await dispose(value, depth + 1); }
}

const counts: Record<Outcome, number> = {
  ok: 0,
  typed: 0,
  named: 0,
  waiting: 0,
  unclear: 0,
  hang: 0,
};
const failures: { callable: string; args: string; outcome: Outcome; error?: string }[] = [];
const seenUnclear = new Set<string>();
let calls = 0;

async function run(
  label: string,
  parameters: Parameter[],
  args: unknown[],
  invoke: (args: unknown[]) => unknown,
  instance?: Instance,
): Promise<void> {
  calls++;
  args = args.map((arg, i) =>
    parameters[i]?.names[0] === "fd" && typeof arg === "number" && arg >= 0 && arg < 1023
      ? 1023
      : arg
  );
  console.error(`> ${label}(${describeArgs(args)})`);
  let outcome: Outcome;
  let error: unknown;
  try {
    const result = invoke(args);
    await dispose(result);
    if (result instanceof Promise) {
      result.then(dispose, () => {}); // judged below; never an unhandled rejection
      let settled = await settleWithin(result, CALL_TIMEOUT_MS);
      if (settled === PENDING) {
        if (instance) {
          await instance.cleanup();
          settled = await settleWithin(result, CALL_TIMEOUT_MS);
          if (settled === PENDING) outcome = "hang";
        } else {
          outcome = givesTimeout(args) ? "hang" : "waiting";
        }
      }
    }
    outcome ??= "ok";
  } catch (thrown) {
    error = thrown;
    outcome = judge(thrown, parameters);
  }
  counts[outcome]++;
  if (outcome === "unclear" || outcome === "hang") {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    const key = `${label} ${outcome} ${message.slice(0, 60)}`;
    if (!seenUnclear.has(key)) {
      seenUnclear.add(key);
      failures.push({ callable: label, args: describeArgs(args), outcome, error: message });
    }
  }
}

function samples(parameters: Parameter[]): unknown[][] {
  return fc.sample(argumentsFor(parameters), { numRuns: RUNS, seed: SEED + calls });
}

// Free functions.
for (const [name, parameters] of functions) {
  if (EXCLUDED.has(name)) continue;
  const fn = (ipc as Record<string, unknown>)[name] as (...args: unknown[]) => unknown;
  for (const args of samples(parameters)) {
    await run(name, parameters, args, (a) => fn(...a));
  }
}

// Classes: public constructors, static methods, then instance methods on fresh instances.
for (const className of classes.keys()) {
  const Class = (ipc as Record<string, unknown>)[className] as
    | (new (...args: unknown[]) => unknown) & Record<string, unknown>
    | undefined;
  if (typeof Class !== "function") continue; // a type-only export
  const parameters = constructorParameters(className);
  if (parameters) {
    for (const args of samples(parameters)) {
      await run(`new ${className}`, parameters, args, (a) => new Class(...a));
    }
  }
  for (const key of Object.getOwnPropertyNames(Class)) {
    const method = Class[key];
    if (typeof method !== "function" || ["length", "name", "prototype"].includes(key)) continue;
    if (isHidden(className, `static ${key}`) || EXCLUDED.has(`${className}.${key}`)) continue;
    const parameters = methodParameters(className, `static ${key}`) ?? [];
    for (const args of samples(parameters)) {
      const confined = className === "Fifo" && typeof args[0] === "string"
        ? [`${temporary}/${encodeURIComponent(args[0] as string).slice(0, 40)}`, ...args.slice(1)]
        : args;
      await run(`${className}.${key}`, parameters, confined, (a) => method.apply(Class, a));
    }
  }
  const factory = factories[className];
  if (!factory) continue;
  const methodKeys = new Set<string | symbol>();
  for (
    let prototype = Class.prototype;
    prototype && prototype !== Object.prototype;
    prototype = Object.getPrototypeOf(prototype)
  ) {
    for (const key of Reflect.ownKeys(prototype)) {
      const descriptor = Object.getOwnPropertyDescriptor(prototype, key)!;
      if (key === "constructor" || typeof descriptor.value !== "function") continue;
      if (!isHidden(className, String(key))) methodKeys.add(key);
    }
  }
  for (const key of methodKeys) {
    const label = `${className}#${String(key)}`;
    const parameters = methodParameters(className, String(key)) ?? [];
    for (const args of samples(parameters)) {
      const instance = await factory();
      try {
        await run(label, parameters, args, (a) => instance.value[key](...a), instance);
      } finally {
        await quietly(instance.cleanup);
      }
    }
  }
}

const summary = JSON.stringify({ calls, counts, failures });
Deno.writeTextFileSync(`${temporary}/summary.json`, summary);
console.log(summary);
Deno.exit(0); // pending waits of "waiting" calls must not keep the process alive
