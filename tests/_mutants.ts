// The mutants `deno task mutants` (tests/mutants.ts) applies, one at a time, to a copy of
// the repository. Each is one exact edit (`find` must occur exactly once in `file`) that
// breaks a behaviour some test pins down, and names the test(s) expected to fail for it:
// a test file and a `--filter` string (a substring of the test's name, written as it
// appears in the file). tests/mutants_list_test.ts keeps this list in step with the code.
//
// A mutant no named test kills is a finding: either the tests miss that behaviour, or the
// mutant changes nothing observable (then say so and remove it).

/** A test expected to fail when a mutant is applied. */
export interface Killer {
  /** Test file, relative to the repository root, e.g. `tests/pipe_test.ts`. */
  test: string;
  /** Passed to `deno test --filter`: a substring of the test's name. */
  filter: string;
}

/** One targeted edit of the code under test. */
export interface Mutant {
  /** Short unique id, e.g. `pipe-eof-as-empty`. */
  id: string;
  /** What the mutation breaks, in words. */
  description: string;
  /** File to edit, relative to the repository root. */
  file: string;
  /** Text to replace; must occur exactly once in `file`. */
  find: string;
  /** Its replacement. */
  replace: string;
  /** Tests expected to kill the mutant (it is killed when any of them fails). */
  killers: Killer[];
  /** Hard limit for each killer's run, in seconds. Default: the runner's `--timeout`. */
  timeoutSeconds?: number;
}

const PIPE = "tests/pipe_test.ts";
const FIFO = "tests/fifo_test.ts";
const QUEUES = "tests/message_queue_test.ts";
const SOCKET = "tests/socket_test.ts";
const SHM = "tests/shared_memory_test.ts";
const WAKEUP = "tests/wakeup_test.ts";
const SEMAPHORE = "tests/semaphore_test.ts";
const RING = "tests/message_ring_test.ts";
const BOUNDED = "tests/bounded_buffer_test.ts";
const CHANNEL_PROCESSES = "tests/channel_process_test.ts";
const STEPS = "tests/step_schedule_test.ts";
const HOSTILE = "tests/hostile_peer_test.ts";
const PROCESS = "tests/process_test.ts";
const MAILBOX_CRASH = "tests/mailbox_crash_test.ts";
const SIGNAL = "tests/signal_test.ts";
const ALPC = "tests/alpc_test.ts";
const ALPC_HOSTILE = "tests/alpc_hostile_test.ts";
const ALPC_EDGES = "tests/alpc_edges_test.ts";

/** The list, grouped by file. */
export const MUTANTS: Mutant[] = [
  // lib/pipe.ts
  {
    id: "pipe-eof-as-empty",
    description: "read(2) returning 0 (EOF) is taken for 'nothing yet'",
    file: "lib/pipe.ts",
    find: "if (n === 0) return null;",
    replace: "if (n === 0) return undefined;",
    killers: [{ test: PIPE, filter: "undefined when empty, null after the writer closes" }],
    timeoutSeconds: 60,
  },
  {
    id: "pipe-write-offset-reset",
    description: "a write that finishes in several parts restarts its offset at each part",
    file: "lib/pipe.ts",
    find: "offset += this.#attempt(bytes.subarray(offset)) ?? 0;",
    replace: "offset = this.#attempt(bytes.subarray(offset)) ?? 0;",
    killers: [{ test: PIPE, filter: "PipeWriter.write() waits while the pipe is full" }],
    timeoutSeconds: 60,
  },
  {
    id: "pipe-epipe-as-full",
    description: "EPIPE on write is taken for a full pipe (a write to a closed pipe waits)",
    file: "lib/pipe.ts",
    find: `if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return undefined;
    throw errnoError(errno, "write"`,
    replace: `if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR || errno === ERRNO.EPIPE) {
      return undefined;
    }
    throw errnoError(errno, "write"`,
    killers: [{ test: PIPE, filter: "PipeWriter after every reader closed: BrokenPipeError" }],
    timeoutSeconds: 60,
  },
  {
    id: "pipe-child-keeps-parent-end",
    description: "spawnWithPipes() leaves the parent's copies of the handed-over ends open",
    file: "lib/pipe.ts",
    find: "for (const end of Object.values(ends)) end.close();",
    replace: "",
    killers: [{ test: PIPE, filter: "spawnWithPipes(): the child inherits exactly the ends" }],
    timeoutSeconds: 60,
  },
  {
    id: "pipe-write-split",
    description: "a write hands write(2) only half its bytes (writes up to PIPE_BUF interleave)",
    file: "lib/pipe.ts",
    find: "const size = BigInt(Math.min(bytes.length, MAX_TRANSFER));",
    replace: "const size = BigInt(Math.min(Math.ceil(bytes.length / 2), MAX_TRANSFER));",
    killers: [{ test: PIPE, filter: "writes of at most PIPE_BUF bytes never interleave" }],
    timeoutSeconds: 120,
  },
  // lib/fifo.ts
  {
    id: "fifo-no-type-check",
    description: "a path that is a regular file is opened as if it were a FIFO",
    file: "lib/fifo.ts",
    find: "if ((mode & C.S_IFMT) !== C.S_IFIFO) {",
    replace: "if (false) {",
    killers: [{ test: FIFO, filter: "a path that is not a FIFO, or is missing" }],
    timeoutSeconds: 60,
  },
  {
    id: "fifo-cancel-leaves-open",
    description: "a cancelled open does not finish its cancellation (the helper end stays open)",
    file: "lib/fifo.ts",
    find: "const fd = await unblock(direction);\n      if (fd >= 0) symbols.close(fd);",
    replace: "const fd = await unblock(direction);",
    killers: [{ test: FIFO, filter: "Fifo opens with no peer: timeout and abort cancel" }],
    timeoutSeconds: 60,
  },
  // lib/message_queue.ts
  {
    id: "sysv-except-dropped",
    description: "receive({ except: true }) forgets MSG_EXCEPT",
    file: "lib/message_queue.ts",
    find: "flags |= C.MSG_EXCEPT;",
    replace: "",
    killers: [{ test: QUEUES, filter: "random sends and selective receives follow msgrcv" }],
  },
  {
    id: "sysv-type-lost",
    description: "every message is sent with mtype 1",
    file: "lib/message_queue.ts",
    find: "sendView.setBigInt64(0, BigInt(type), true);",
    replace: "sendView.setBigInt64(0, 1n, true);",
    killers: [{ test: QUEUES, filter: "random sends and selective receives follow msgrcv" }],
  },
  {
    id: "sysv-last-byte-lost",
    description: "a received message loses its last byte",
    file: "lib/message_queue.ts",
    find: "data.set(buffer.subarray(8, 8 + n));",
    replace: "data.set(buffer.subarray(8, 7 + n));",
    killers: [{ test: QUEUES, filter: "random sends and selective receives follow msgrcv" }],
  },
  {
    id: "sysv-e2big-as-empty",
    description: "a receive buffer too small for the next message looks like an empty queue",
    file: "lib/message_queue.ts",
    find: "if (errno === ERRNO.ENOMSG || errno === ERRNO.EINTR) return undefined;",
    replace:
      "if (errno === ERRNO.ENOMSG || errno === ERRNO.EINTR || errno === ERRNO.E2BIG) return undefined;",
    killers: [{ test: QUEUES, filter: "a too small receive is E2BIG unless truncate" }],
  },
  // lib/posix_message_queue.ts
  {
    id: "posix-mq-size-unchecked",
    description: "a payload one byte over the message size is not refused before mq_send",
    file: "lib/posix_message_queue.ts",
    find: "if (bytes.length > this.#messageSize) {",
    replace: "if (bytes.length > this.#messageSize + 1) {",
    killers: [{ test: QUEUES, filter: "PosixMessageQueue: defaults, exclusive create" }],
  },
  {
    id: "posix-mq-priority-lost",
    description: "a received message reports priority 0",
    file: "lib/posix_message_queue.ts",
    find: "return new QueueMessage(receivePriority[0], data);",
    replace: "return new QueueMessage(0, data);",
    killers: [{ test: QUEUES, filter: "PosixMessageQueue: defaults, exclusive create" }],
  },
  {
    id: "posix-mq-full-is-error",
    description: "a full queue (EAGAIN) on send is an error instead of 'wait'",
    file: "lib/posix_message_queue.ts",
    find: `if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return false;
    throw errnoError(errno, "mq_send"`,
    replace: `if (errno === ERRNO.EINTR) return false;
    throw errnoError(errno, "mq_send"`,
    killers: [{ test: QUEUES, filter: "PosixMessageQueue: defaults, exclusive create" }],
  },
  {
    id: "posix-mq-priority-by-length",
    description: "messages get a priority from their length, so they overtake each other",
    file: "lib/posix_message_queue.ts",
    find:
      "if (symbols.mq_send(this.#fd, bytes, BigInt(bytes.length), priority) === 0) return true;",
    replace:
      "if (symbols.mq_send(this.#fd, bytes, BigInt(bytes.length), bytes.length % 3) === 0) return true;",
    killers: [{
      test: "tests/linearizability_process_test.ts",
      filter: "histories of processes sending and receiving at once are linearizable",
    }],
  },
  // lib/socket.ts (framing)
  {
    id: "socket-header-little-endian",
    description: "the sender writes the frame length little-endian (the reader expects big)",
    file: "lib/socket.ts",
    find: "new DataView(frame.buffer).setUint32(0, bytes.length);",
    replace: "new DataView(frame.buffer).setUint32(0, bytes.length, true);",
    killers: [{ test: SOCKET, filter: "echo over TCP and Unix sockets" }],
  },
  {
    id: "socket-inbound-limit-dropped",
    description: "a peer announcing a frame over maxFrameSize is not refused",
    file: "lib/socket.ts",
    find:
      "if (length > this.#maxFrame) throw new FrameTooLargeError(length, this.#maxFrame, true);",
    replace: "",
    killers: [{ test: SOCKET, filter: "oversized frames: refused before sending" }],
    timeoutSeconds: 60,
  },
  {
    id: "socket-truncation-as-eof",
    description: "a peer closing mid-frame looks like a clean end of stream",
    file: "lib/socket.ts",
    find: "if (this.#end === this.#start) return null;",
    replace: "return null;",
    killers: [{ test: SOCKET, filter: "a peer closing mid-frame is a TruncatedFrameError" }],
  },
  {
    id: "socket-buffered-frame-short",
    description: "a buffered frame is taken before all of its bytes arrived",
    file: "lib/socket.ts",
    find:
      "if (length > this.#maxFrame || this.#end - this.#start < HEADER + length) return undefined;",
    replace: "if (length > this.#maxFrame || this.#end - this.#start < length) return undefined;",
    killers: [{ test: SOCKET, filter: "a frame buffered but for its last bytes is received" }],
  },
  // lib/_wait.ts
  {
    id: "wait-deadline-dropped",
    description: "the wait loop never checks its deadline (a timed wait waits forever)",
    file: "lib/_wait.ts",
    find: "if (remaining <= 0) throw waitable.timedOutError(timeout);",
    replace: "",
    killers: [{ test: "tests/wait_test.ts", filter: "a timed wait that nothing wakes ends" }],
    timeoutSeconds: 60,
  },
  {
    id: "wait-pre-abort-dropped",
    description: "an already aborted signal is not checked before the first attempt",
    file: "lib/_wait.ts",
    find:
      "signal?.throwIfAborted();\n  if (lifetime.closing.aborted) throw waitable.closedError();",
    replace: "if (lifetime.closing.aborted) throw waitable.closedError();",
    killers: [{ test: SEMAPHORE, filter: "NamedSemaphore.wait() rejects with the abort reason" }],
    timeoutSeconds: 60,
  },
  {
    id: "turns-give-up-overtakes",
    description: "a caller that gives up in the queue lets the next one overtake the one before",
    file: "lib/_wait.ts",
    find: "previous.finally(turn.resolve);",
    replace: "turn.resolve();",
    killers: [{ test: SOCKET, filter: "a receive that gives up in the queue does not let" }],
  },
  // lib/_futex.ts
  {
    id: "futex-wake-syscall-dropped",
    description: "a waker clears the flag but never calls FUTEX_WAKE",
    file: "lib/_futex.ts",
    find: "Atomics.exchange(this.#words, this.#index, 0) !== 0\n    ) {",
    replace: "Atomics.exchange(this.#words, this.#index, 0) !== 0 && false\n    ) {",
    killers: [{ test: WAKEUP, filter: "a receiver sleeping on a MessageRing is woken" }],
  },
  {
    id: "futex-announce-dropped",
    description: "a waiter never sets its flag, so its futex wait returns at once (it spins)",
    file: "lib/_futex.ts",
    find: "Atomics.store(this.#words, this.#index, 1);",
    replace: "",
    killers: [{
      test: "tests/futex_test.ts",
      filter: "a waiter sleeping on the futex uses no CPU",
    }],
  },
  // lib/shared_memory.ts
  {
    id: "shm-create-not-exclusive",
    description: "create() opens an existing object instead of failing with AlreadyExistsError",
    file: "lib/shared_memory.ts",
    find: '        check(\n          "link",\n          symbols.link(',
    replace: "        (\n          symbols.link(",
    killers: [{ test: SHM, filter: "SharedMemory.create() is exclusive" }],
  },
  {
    id: "shm-open-size-unchecked",
    description: "open() accepts an object smaller than the size asked for",
    file: "lib/shared_memory.ts",
    find: "if (size === 0 || size < minimumSize) {",
    replace: "if (size === 0) {",
    killers: [{ test: SHM, filter: "SharedMemory.openOrCreate() creates once and then opens" }],
  },
  {
    id: "shm-close-no-detach",
    description: "close() unmaps without detaching the buffer (views still reach the mapping)",
    file: "lib/shared_memory.ts",
    find: "this.#buffer.transfer(0);",
    replace: "",
    killers: [{ test: SHM, filter: "SharedMemory.close() detaches views" }],
  },
  // lib/message_ring.ts
  {
    id: "ring-room-off-by-eight",
    description: "the room check lets a record overrun unread bytes by 8",
    file: "lib/message_ring.ts",
    find: "if (this.#capacity - ((head - this.#cachedTail) >>> 0) < need) {",
    replace: "if (this.#capacity - ((head - this.#cachedTail) >>> 0) < need - 8) {",
    killers: [{ test: RING, filter: "a record never overruns unread bytes" }],
  },
  {
    id: "ring-receiver-wake-dropped",
    description: "a send does not wake a sleeping receiver",
    file: "lib/message_ring.ts",
    find: "    if (sent) this.#receiveWaiting.wake();\n",
    replace: "",
    killers: [
      { test: WAKEUP, filter: "a receiver sleeping on a MessageRing is woken" },
      { test: STEPS, filter: "MessageRing, step by step: any interleaving" },
    ],
  },
  {
    id: "ring-failed-attempt-wake-dropped",
    description: "a send whose attempt fails releases the lock without waking senders",
    file: "lib/message_ring.ts",
    find: "        this.#sendWaiting.wake();\n      }\n    }\n    if (sent)",
    replace: "      }\n    }\n    if (sent && lock) this.#sendWaiting.wake();\n    if (sent)",
    killers: [
      { test: WAKEUP, filter: "a sender sleeping on a held send lock is woken" },
      { test: STEPS, filter: "MessageRing, step by step: any interleaving" },
    ],
  },
  {
    id: "ring-failed-take-wake-dropped",
    description: "a receive whose attempt finds nothing releases the lock without waking",
    file: "lib/message_ring.ts",
    find: "        this.#receiveWaiting.wake();\n      }\n    }\n    if (taken)",
    replace: "      }\n    }\n    if (taken && lock) this.#receiveWaiting.wake();\n    if (taken)",
    killers: [{ test: WAKEUP, filter: "a receiver sleeping on a held receive lock is woken" }],
  },
  {
    id: "ring-publish-before-copy",
    description: "the head is published before the message is copied in",
    file: "lib/message_ring.ts",
    find: "const at = head & this.#mask;\n      this.#dataWords[at >> 2] = message.length;",
    replace:
      "const at = head & this.#mask;\n      Atomics.store(words, I_HEAD, (head + need) | 0);\n      this.#dataWords[at >> 2] = message.length;",
    killers: [{ test: STEPS, filter: "MessageRing, step by step: any interleaving" }],
  },
  {
    id: "ring-cached-tail-aba",
    description: "the cached tail is trusted without checking who moved the head last",
    file: "lib/message_ring.ts",
    find: "if (lastSender !== this.#id || this.#capacity",
    replace: "if (this.#capacity",
    killers: [{ test: RING, filter: "after others moved the head exactly 2^32 bytes" }],
  },
  {
    id: "ring-cached-head-aba",
    description: "the cached head is trusted without checking who moved the tail last",
    file: "lib/message_ring.ts",
    find: "if (lastReceiver !== this.#id || ((this.#cachedHead",
    replace: "if (((this.#cachedHead",
    killers: [{ test: RING, filter: "after others moved the tail exactly 2^32 bytes" }],
  },
  {
    id: "ring-dead-producer-not-ended",
    description: "a producer that died without end() never ends the stream",
    file: "lib/message_ring.ts",
    find: "  #endDeadProducers(): void {\n",
    replace: "  #endDeadProducers(): void {\n    if (this.#capacity > 0) return;\n",
    killers: [{ test: CHANNEL_PROCESSES, filter: "producers that died without end()" }],
  },
  {
    id: "ring-record-length-unchecked",
    description: "a record length another process wrote is used unchecked",
    file: "lib/message_ring.ts",
    find: "      if (length < 0 || recordSize(length) > published) {",
    replace: "      if (false) {",
    killers: [{ test: HOSTILE, filter: "a hostile peer cannot crash a" }],
  },
  // lib/bounded_buffer.ts
  {
    id: "textbook-full-check-dropped",
    description: "the producer writes into the one slot that must stay empty",
    file: "lib/bounded_buffer.ts",
    find: 'if (next === this.#index(I_OUT, "out")) {',
    replace: "if (false) {",
    killers: [{ test: BOUNDED, filter: "BoundedBuffer keeps one slot empty" }],
  },
  {
    id: "textbook-consumer-wake-dropped",
    description: "a send does not wake a sleeping consumer",
    file: "lib/bounded_buffer.ts",
    find: 'step("buffer.send.published");\n    this.#consumerWaiting.wake();',
    replace: 'step("buffer.send.published");',
    killers: [
      { test: WAKEUP, filter: "a consumer sleeping on the textbook BoundedBuffer" },
      { test: STEPS, filter: "BoundedBuffer (textbook), step by step" },
    ],
  },
  {
    id: "textbook-index-unchecked",
    description: "an index another process wrote is used to index the slots unchecked",
    file: "lib/bounded_buffer.ts",
    find: "    if (!(value >= 0 && value < this.#bufferSize)) {",
    replace: "    if (false) {",
    killers: [{ test: HOSTILE, filter: "a hostile peer cannot crash a" }],
  },
  // lib/_mailbox_store.ts, lib/_rendezvous.ts
  {
    id: "mailbox-dead-offer-live",
    description: "a rendezvous offer of a dead receiver counts as live",
    file: "lib/_rendezvous.ts",
    find: "const alive = token === own || tokenAlive(token);",
    replace: "const alive = true;",
    killers: [{ test: MAILBOX_CRASH, filter: "a receiver killed while its offer is up" }],
  },
  {
    id: "mailbox-send-repair-dropped",
    description: "a sender killed between publishing and counting leaves SENT one short",
    file: "lib/_mailbox_store.ts",
    find: "    if (published) words[I_SENT] = intent;",
    replace: "",
    killers: [{ test: MAILBOX_CRASH, filter: "a sender killed between publishing and counting" }],
  },
  {
    id: "mailbox-release-wake-dropped",
    description: "releasing the send lock does not wake senders that slept on it",
    file: "lib/_mailbox_store.ts",
    find: "    this.#sendLock.release();\n    this.#sendLockWaiting.wake();",
    replace: "    this.#sendLock.release();",
    killers: [
      { test: MAILBOX_CRASH, filter: "a sender that finds the mailbox full wakes" },
      { test: STEPS, filter: "Mailbox, step by step" },
    ],
  },
  {
    id: "mailbox-receiver-wake-dropped",
    description: "a send does not wake receivers sleeping for a message",
    file: "lib/_mailbox_store.ts",
    find: "    this.#receiveWaiting.wake();\n    this.onPublish?.();",
    replace: "    this.onPublish?.();",
    killers: [{ test: STEPS, filter: "Mailbox, step by step" }],
  },
  {
    id: "mailbox-empty-repair-dropped",
    description: "a receiver finding the mailbox empty never corrects TAKEN behind SENT",
    file: "lib/_mailbox_store.ts",
    find: "if ((this.#emptyLooks++ & (EMPTY_LOOKS_PER_REPAIR - 1)) !== 0) break;",
    replace: "break;",
    killers: [{ test: MAILBOX_CRASH, filter: "a receiver killed between taking a message" }],
  },
  {
    id: "mailbox-chain-unbounded",
    description: "delete() walks segment indices another process wrote without a bound",
    file: "lib/_segment_chain.ts",
    find: "  for (let n = 0; n <= Math.min(span, MAX_CHAIN); n++) {",
    replace: "  for (let n = 0; n <= span; n++) {",
    killers: [{ test: "tests/mailbox_test.ts", filter: "without walking 2^30 names" }],
  },
  {
    id: "semaphore-buffer-index-unchecked",
    description:
      "the semaphore buffer's in index, which another process can write, is used unchecked",
    file: "lib/semaphore_bounded_buffer.ts",
    find: "    if (!(inIndex >= 0 && inIndex < this.#bufferSize)) {",
    replace: "    if (false) {",
    killers: [{ test: HOSTILE, filter: "a hostile peer cannot crash a" }],
  },
  // lib/_process.ts
  {
    id: "process-zombie-alive",
    description: "a zombie counts as a live process",
    file: "lib/_process.ts",
    find: '  return stat.state !== "Z" && stat.state !== "X";\n}',
    replace: "  return true;\n}",
    killers: [{ test: PROCESS, filter: "a zombie process counts as dead" }],
  },
  {
    id: "pidlock-pid-only",
    description: "a lock holder is judged alive by its pid alone (a reused pid keeps the lock)",
    file: "lib/_process.ts",
    find: "    if (tokenAlive(holder)) {",
    replace: "    if (processExists(tokenParts(holder).pid)) {",
    killers: [{ test: PROCESS, filter: "PidLock is taken over from a dead holder" }],
  },
  {
    id: "pidlock-alive-forever",
    description: "a lock holder once found alive is never looked up again",
    file: "lib/_process.ts",
    find: "now - this.#aliveCheckedAt < HOLDER_RECHECK_MS",
    replace: "true",
    killers: [{ test: PROCESS, filter: "PidLock is taken over from a dead holder" }],
  },
  // lib/signal.ts (Doorbell)
  {
    id: "doorbell-signal-from-memory",
    description: "a ring sends the signal shared memory names",
    file: "lib/signal.ts",
    find: "      if (signal !== SIGNALS[this.#signal]) {",
    replace: "      if (false) {",
    killers: [{ test: SIGNAL, filter: "never signals what shared memory names" }],
  },
  {
    id: "doorbell-no-dispatch-grace",
    description: "a listener stops right after a signal, before Deno passed it on (it kills)",
    file: "lib/signal.ts",
    find: "const DISPATCH_GRACE_MS = 10;",
    replace: "const DISPATCH_GRACE_MS = 0;",
    killers: [{ test: SIGNAL, filter: "stops just after a ring's signal arrived" }],
  },
  {
    id: "doorbell-pid-only",
    description: "a ring signals a live process with the listener's pid but another start time",
    file: "lib/signal.ts",
    find: "    if (pidfd < 0 || !processAlive(pid, startTime)) {",
    replace: "    if (pidfd < 0) {",
    killers: [{ test: SIGNAL, filter: "listens on the signal but has another start time" }],
  },
  {
    id: "doorbell-uncaught-signal",
    description: "a ring signals a process that does not catch the signal (it dies of it)",
    file: "lib/signal.ts",
    find: "      (!self && !signalCaught(pid, receiverParts(word).signal))",
    replace: "      false",
    killers: [{ test: SIGNAL, filter: "never signals what shared memory names" }],
  },
  // lib/shared_memory.ts (creation)
  {
    id: "shm-temporary-kept",
    description: "create leaves its temporary name behind",
    file: "lib/shared_memory.ts",
    find: "      symbols.shm_unlink(temporaryPath);\n      symbols.close(fd);",
    replace: "      symbols.close(fd);",
    killers: [{ test: SHM, filter: "leaves no temporary name behind" }],
  },
  // lib/alpc.ts and its internals (ALPC)
  {
    id: "alpc-section-bounds",
    description: "a section reference running past the end of the section is taken",
    file: "lib/_alpc_section.ts",
    find: "offset % ALIGNMENT !== 0 || length === 0 || offset + length > this.size",
    replace: "offset % ALIGNMENT !== 0 || length === 0 || offset > this.size",
    killers: [{ test: ALPC_HOSTILE, filter: "outside the client's real section" }],
  },
  {
    id: "alpc-unsealed-section",
    description: "a section the peer could shrink (no seals) is mapped",
    file: "lib/_alpc_section.ts",
    find: "if (seals < 0 || (seals & REQUIRED_SEALS) !== REQUIRED_SEALS) {",
    replace: "if (seals < 0) {",
    killers: [{ test: ALPC_HOSTILE, filter: "not a sealed memfd of the announced size" }],
  },
  {
    id: "alpc-reply-id-unchecked",
    description: "a reply whose id no request waits for is ignored instead of an error",
    file: "lib/_alpc_channel.ts",
    find: 'if (kind === "reply" && !this.#pending.has(header.id) && !this.#issued(header.id)) {',
    replace: "if (false) {",
    killers: [{ test: ALPC_HOSTILE, filter: "reply with a wrong id" }],
  },
  {
    id: "alpc-section-kept-mapped",
    description: "a closed channel leaves its own section mapped",
    file: "lib/_alpc_channel.ts",
    find: "    this.#parts.ownSection?.close();\n",
    replace: "",
    killers: [{ test: ALPC, filter: "sections are unmapped" }],
  },
  {
    id: "alpc-nested-callback-no-handler",
    description: "a callback made inside a callback handler does not inherit that handler",
    file: "lib/_alpc_channel.ts",
    find: "const onCallback = options?.onCallback ?? this.handler;",
    replace: "const onCallback = options?.onCallback;",
    killers: [{ test: ALPC, filter: "callbacks nest" }],
  },
  {
    id: "alpc-peer-uid-unchecked",
    description: "in-place copies trust the pid whatever runs there now",
    file: "lib/_alpc_vm.ts",
    find:
      "export function assertPeerUnchanged(peer: PeerCredentials, syscall: string, name: string): void {",
    replace:
      "export function assertPeerUnchanged(peer: PeerCredentials, syscall: string, name: string): void {\n  if (peer) return;",
    killers: [{ test: ALPC_EDGES, filter: "user ids changed since it connected" }],
  },
  {
    id: "alpc-in-place-bytes-unbounded",
    description: "in-place payloads not taken do not stop the reader",
    file: "lib/_alpc_channel.ts",
    find: "this.#backlog >= MAX_BACKLOG || this.#inPlaceBytes > this.#parts.maxMessageSize",
    replace: "this.#backlog >= MAX_BACKLOG",
    killers: [{ test: ALPC_EDGES, filter: "hold at most about maxMessageSize" }],
  },
  {
    id: "alpc-section-end-unaligned",
    description: "the last range of a section not a multiple of 64 refuses a message that fits",
    file: "lib/_alpc_section.ts",
    find: "const take = range.end === this.size ? Math.min(rounded, available) : rounded;",
    replace: "const take = rounded;",
    killers: [{ test: ALPC_EDGES, filter: "not a multiple of 64" }],
  },
];
