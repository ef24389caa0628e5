// The wait loop's deadline holds by itself: a timed wait that nothing wakes ends with
// TimedOutError soon after its timeout. The wait runs in a child process that the test
// kills if it is still waiting 10 s later, so a lost deadline fails the test instead of
// hanging it (a hung wait's pool-thread call would keep this process alive).
import assert from "node:assert/strict";
import { Child, ipcTest } from "./_helpers.ts";

ipcTest("a timed wait that nothing wakes ends with TimedOutError near its deadline", async () => {
  const child = new Child("wait_child.ts", ["50"]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const ended = await Promise.race([
      child.line(),
      new Promise<string>((resolve) => timer = setTimeout(() => resolve("still waiting"), 10_000)),
    ]);
    assert.equal(ended, "TimedOutError", "a 50 ms wait was still waiting after 10 s");
    assert.equal((await child.status()).code, 0);
  } finally {
    clearTimeout(timer);
    await child[Symbol.asyncDispose]();
  }
});
