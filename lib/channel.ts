/**
 * The interface every producer-consumer structure of deno-ipc shares: blocking and
 * non-blocking send and receive, an end of stream, async iteration and web streams.
 *
 * @module
 */
import { validateWaitOptions, type WaitOptions } from "./_wait.ts";
import { jsonText, validateString } from "./_validate.ts";

export type { WaitOptions } from "./_wait.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A one-way stream of messages between processes.
 *
 * - `trySend` / `tryReceive` never wait: `trySend` returns `false` when the channel is
 *   full; `tryReceive` returns `undefined` when nothing is there yet.
 * - `send` / `receive` wait (off the main thread) with `timeout` and `signal` options.
 * - `end()` marks the end of the stream: receivers drain what was sent, then get `null`
 *   (and iteration stops); sending after the end throws `StreamEndedError`.
 * - `close()` releases this process's handle; the channel itself lives until unlinked.
 *
 * @example Iterating until the end of the stream
 * ```ts
 * import { MessageRing } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using ring = MessageRing.create({ capacity: 4096 });
 * try {
 *   await ring.sendText("one");
 *   await ring.sendJson({ two: 2 });
 *   ring.end();
 *   const received = [];
 *   for await (const message of ring) received.push(message.length);
 *   assert.deepEqual(received, [3, 9]);
 * } finally {
 *   ring.unlink();
 * }
 * ```
 */
export abstract class Channel implements Disposable, AsyncIterable<Uint8Array> {
  /** The channel's name, for opening it from other processes. */
  abstract readonly name: string;
  /** Whether `close()` was called on this handle. */
  abstract readonly closed: boolean;

  /** Sends `message` if there is room now; returns `false` when the channel is full. */
  abstract trySend(message: Uint8Array): boolean;
  /** Sends `message`, waiting for room. */
  abstract send(message: Uint8Array, options?: WaitOptions): Promise<void>;
  /**
   * Receives the next message if one is there: the message, `undefined` when there is
   * none yet, or `null` when the stream has ended and everything was received.
   */
  abstract tryReceive(): Uint8Array | null | undefined;
  /** Receives the next message, waiting for one; `null` at the end of the stream. */
  abstract receive(options?: WaitOptions): Promise<Uint8Array | null>;
  /** Marks the end of the stream (see the class description). */
  abstract end(): void;
  /** Releases this process's handle. Idempotent. */
  abstract close(): void;

  /** Sends `text` as UTF-8. */
  sendText(text: string, options?: WaitOptions): Promise<void> {
    try {
      return this.#sendEncoded(validateString(text, "text"), "text", options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  // Sends `text`; a plain RangeError of send() (the encoded message does not suit the
  // channel) is reported against the caller's argument, `what`.
  async #sendEncoded(text: string, what: string, options?: WaitOptions): Promise<void> {
    validateWaitOptions(options); // so that a RangeError below is about the message
    try {
      await this.send(encoder.encode(text), options);
    } catch (error) {
      if (error instanceof RangeError && error.constructor === RangeError) {
        throw new RangeError(`Invalid ${what}: ${error.message}`, { cause: error });
      }
      throw error;
    }
  }

  /** Receives a message as UTF-8 text; `null` at the end of the stream. */
  async receiveText(options?: WaitOptions): Promise<string | null> {
    const message = await this.receive(options);
    return message === null ? null : decoder.decode(message);
  }

  /** Sends `value` as JSON. */
  sendJson(value: unknown, options?: WaitOptions): Promise<void> {
    try {
      return this.#sendEncoded(jsonText(value, "value"), "value", options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Receives a message as JSON; `null` at the end of the stream. */
  async receiveJson<T = unknown>(options?: WaitOptions): Promise<T | null> {
    const text = await this.receiveText(options);
    return text === null ? null : JSON.parse(text) as T;
  }

  /** Receives messages until the end of the stream. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    while (true) {
      const message = await this.receive();
      if (message === null) return;
      yield message;
    }
  }

  /** A ReadableStream of the messages, closing at the end of the stream. */
  readable(): ReadableStream<Uint8Array> {
    return new ReadableStream({
      pull: async (controller) => {
        const message = await this.receive();
        if (message === null) controller.close();
        else controller.enqueue(message);
      },
    });
  }

  /** A WritableStream that sends each chunk as a message; closing it ends the stream. */
  writable(): WritableStream<Uint8Array> {
    return new WritableStream({
      write: (chunk) => this.send(chunk),
      close: () => this.end(),
    });
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
