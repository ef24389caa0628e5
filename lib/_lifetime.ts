// The life of a handle whose memory a pool thread may still be using.
//
// A `nonblocking: true` FFI call keeps running on Deno's thread pool after the JS side
// stops waiting for it. Unmapping (munmap, sem_close) under such a call would make the
// pool thread touch freed memory and crash the process, so release is deferred until
// the last tracked call has returned. Tracked calls are bounded in time (see _wait.ts),
// so release always happens, shortly.

/** Tracks closed state, in-flight pool calls and the deferred release of a handle. */
export class Lifetime {
  #closed = false;
  #released = false;
  #inflight = 0;
  // Made on first use: most handles are never waited on, and an AbortController per
  // handle made open/close cycles allocate (and leave for the GC) far more than needed.
  #controller: AbortController | undefined;
  #release: () => void;
  #whenReleased: PromiseWithResolvers<void> | undefined;

  /** `release` frees the handle's kernel resources; it runs exactly once. */
  constructor(release: () => void) {
    this.#release = release;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Aborts when the handle closes, so that waiters can stop at once. */
  get closing(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#closed) this.#controller.abort();
    }
    return this.#controller.signal;
  }

  /** Marks the handle closed; returns false if it already was. */
  close(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    this.#controller?.abort();
    this.#maybeRelease();
    return true;
  }

  /** Keeps the resources alive while a pool call or a dependent handle uses them. */
  pin(): void {
    this.#inflight++;
  }

  /** Ends a {@link pin}. */
  unpin(): void {
    this.#inflight--;
    this.#maybeRelease();
  }

  /** Resolves once the resources are released: closed, and no pool call still running. */
  get released(): Promise<void> {
    if (this.#released) return Promise.resolve();
    return (this.#whenReleased ??= Promise.withResolvers<void>()).promise;
  }

  #maybeRelease(): void {
    if (this.#closed && this.#inflight === 0 && !this.#released) {
      this.#released = true;
      try {
        this.#release();
      } finally {
        this.#whenReleased?.resolve();
      }
    }
  }
}
