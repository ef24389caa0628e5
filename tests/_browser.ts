// Headless Chromium for tests, driven over the Chrome DevTools Protocol with Deno's own
// WebSocket (no npm browser download). Used to check that generated SVG diagrams render.

const CANDIDATES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];

/** The Chromium executable: $DENO_IPC_CHROMIUM, else the first candidate on PATH. */
export function findChromium(): string | undefined {
  const allowed = (variable: string) =>
    Deno.permissions.querySync({ name: "env", variable }).state === "granted";
  const configured = allowed("DENO_IPC_CHROMIUM") ? Deno.env.get("DENO_IPC_CHROMIUM") : undefined;
  if (configured) return configured;
  const path = allowed("PATH") ? Deno.env.get("PATH") ?? "" : "";
  for (const directory of path.split(":").filter((entry) => entry !== "")) {
    for (const name of CANDIDATES) {
      try {
        const info = Deno.statSync(`${directory}/${name}`);
        if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return `${directory}/${name}`;
      } catch { /* not here */ }
    }
  }
  return undefined;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** One browser process showing one page; `await using` closes both and removes the profile. */
export class HeadlessPage implements AsyncDisposable {
  #socket: WebSocket;
  #pending = new Map<number, (message: Record<string, unknown>) => void>();
  #nextId = 0;

  private constructor(
    readonly browser: Deno.ChildProcess,
    readonly profile: string,
    readonly stderr: ReadableStreamDefaultReader<string>,
    socket: WebSocket,
  ) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      const resolve = this.#pending.get(message.id);
      if (resolve === undefined) return;
      this.#pending.delete(message.id);
      resolve(message);
    };
  }

  /** Starts headless Chromium showing a blank page. */
  static async open(
    executable: string,
    options: { width?: number; height?: number } = {},
  ): Promise<HeadlessPage> {
    const profile = Deno.makeTempDirSync({ prefix: "deno-ipc-chromium-" });
    const browser = new Deno.Command(executable, {
      args: [
        "--headless",
        "--no-sandbox", // CI runs as root
        "--disable-gpu",
        "--no-first-run",
        "--disable-crash-reporter", // no crashpad handler left writing into the profile
        "--remote-debugging-port=0",
        `--user-data-dir=${profile}`,
        `--window-size=${options.width ?? 1200},${options.height ?? 900}`,
        "about:blank",
      ],
      env: { TMPDIR: profile, HOME: profile },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = browser.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let socket: WebSocket | undefined;
    try {
      let text = "";
      const endpoint = await withTimeout(
        (async () => {
          for (let chunk = await stderr.read(); !chunk.done; chunk = await stderr.read()) {
            text += chunk.value;
            const match = text.match(/DevTools listening on (ws:\/\/\S+)/);
            if (match) return new URL(match[1]);
          }
          throw new Error(`chromium exited: ${text}`);
        })(),
        30_000,
        "chromium's DevTools endpoint",
      );
      const targets = await (await fetch(`http://${endpoint.host}/json/list`)).json() as {
        type: string;
        webSocketDebuggerUrl: string;
      }[];
      const target = targets.find((candidate) => candidate.type === "page");
      if (target === undefined) throw new Error("chromium has no page target");
      socket = new WebSocket(target.webSocketDebuggerUrl);
      const opened = socket;
      await withTimeout(
        new Promise((resolve, reject) => {
          opened.onopen = resolve;
          opened.onerror = reject;
        }),
        10_000,
        "DevTools WebSocket",
      );
      return new HeadlessPage(browser, profile, stderr, socket);
    } catch (error) {
      socket?.close();
      await HeadlessPage.#stop(browser, stderr, profile);
      throw error;
    }
  }

  /** Loads `url` and waits until its document (of `contentType`) is complete. */
  async goto(url: string, contentType = ""): Promise<void> {
    await this.call("Page.navigate", { url });
    for (let i = 0;; i++) {
      const state = await this.evaluate<string>(
        "document.readyState + ' ' + document.contentType + ' ' + location.href",
      );
      if (state.startsWith(`complete ${contentType}`) && state.endsWith(url)) return;
      if (i > 200) throw new Error(`page did not load: ${state}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Sends one DevTools command and returns its result (throws on a protocol error). */
  // deno-lint-ignore no-explicit-any
  async call(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const id = ++this.#nextId;
    const reply = new Promise<Record<string, unknown>>((resolve) => this.#pending.set(id, resolve));
    this.#socket.send(JSON.stringify({ id, method, params }));
    const message = await withTimeout(reply, 30_000, method);
    if (message.error) throw new Error(`${method}: ${JSON.stringify(message.error)}`);
    return message.result;
  }

  /** Evaluates `expression` in the page and returns its value (JSON-serialisable). */
  async evaluate<T>(expression: string): Promise<T> {
    const result = await this.call("Runtime.evaluate", { expression, returnByValue: true });
    if (result.exceptionDetails) {
      throw new Error(`page threw: ${JSON.stringify(result.exceptionDetails).slice(0, 500)}`);
    }
    return result.result.value as T;
  }

  /** A PNG of the area (0, 0, width, height) of the page, beyond the window if needed. */
  async screenshot(width: number, height: number): Promise<Uint8Array> {
    const { data } = await this.call("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
      clip: { x: 0, y: 0, width, height, scale: 1 },
    });
    return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  }

  static async #stop(
    browser: Deno.ChildProcess,
    stderr: ReadableStreamDefaultReader<string>,
    profile: string,
  ): Promise<void> {
    try {
      browser.kill("SIGKILL");
    } catch { /* already exited */ }
    await browser.status;
    await stderr.cancel().catch(() => {});
    // Chromium's helper processes outlive the browser by a moment and may still write
    // into the profile: retry until they are gone.
    for (let attempt = 0;; attempt++) {
      try {
        Deno.removeSync(profile, { recursive: true });
        return;
      } catch (error) {
        if (attempt >= 100) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    const closed = new Promise((resolve) => (this.#socket.onclose = resolve));
    this.#socket.close();
    await withTimeout(closed, 5000, "closing the DevTools WebSocket").catch(() => {});
    await HeadlessPage.#stop(this.browser, this.stderr, this.profile);
  }
}
